"""mqttspec-server's embedded broker against Python paho-mqtt (MQTT 3.1.1
and 5): one client's burst at QoS 0 and 1 is answered or refused while
another client keeps being answered, per-client isolation with MQTT 5
reason codes, MQTT 5 request/response and user properties, retained
messages, wills with a v5 will delay, session present, QoS 2, keepalive 0.

Run: python3 -m unittest tests/python/test_broker.py (the binary is
target/debug/mqttspec-server, or $MQTTSPEC_SERVER).
"""

import json
import os
import queue
import re
import subprocess
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("MQTTSPEC_SERVER", os.path.join(ROOT, "target", "debug", "mqttspec-server"))
WAIT = 30
ACL = "pattern readwrite chat/#\npattern readwrite retained/#\n"


class Server:
    """The real binary on OS-assigned ports, with an ACL file for chat/#."""

    def __init__(self, *extra):
        self.dir = tempfile.TemporaryDirectory()
        acl = os.path.join(self.dir.name, "acl")
        with open(acl, "w") as f:
            f.write(ACL)
        self.proc = subprocess.Popen(
            [BINARY, "--demo", "--mqtt-listen", "127.0.0.1:0", "--ws-listen", "off",
             "--acl-file", acl, *extra],
            stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        for line in self.proc.stderr:
            match = re.search(r"mqttspec-server ready mqtt=Some\(127\.0\.0\.1:(\d+)\)", line)
            if match:
                self.port = int(match.group(1))
                break
            if time.time() > deadline:
                raise RuntimeError("server not ready")
        else:
            raise RuntimeError("server exited before it was ready")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.dir.cleanup()


class Peer:
    """A paho client whose messages, SUBACKs and PUBACKs land in queues."""

    def __init__(self, port, client_id, v5=True, clean=True, will=None, keepalive=30, session_expiry=0):
        self.v5 = v5
        self.messages = queue.Queue()
        self.subacks = queue.Queue()
        self.pubacks = queue.Queue()
        self.connacks = queue.Queue()
        protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        kwargs = {} if v5 else {"clean_session": clean}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=protocol, **kwargs)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(64)
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.subacks.put(codes)
        self.client.on_publish = lambda c, u, mid, code, props: self.pubacks.put((mid, code))
        self.client.on_connect = lambda c, u, flags, code, props: self.connacks.put((flags, code))
        if will:
            topic, payload, props = will
            self.client.will_set(topic, payload, qos=1, properties=props)
        connect_props = None
        if v5:
            connect_props = Properties(PacketTypes.CONNECT)
            connect_props.SessionExpiryInterval = session_expiry
        if v5:
            self.client.connect("127.0.0.1", port, keepalive=keepalive, clean_start=clean,
                                properties=connect_props)
        else:
            self.client.connect("127.0.0.1", port, keepalive=keepalive)
        self.client.loop_start()
        self.flags, self.code = self.connacks.get(timeout=WAIT)

    def subscribe(self, topic, qos=1):
        self.client.subscribe(topic, qos)
        return self.subacks.get(timeout=WAIT)

    def message(self):
        return self.messages.get(timeout=WAIT)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self):
        """End the connection without DISCONNECT (the will is sent)."""
        self.client.loop_stop()
        self.client.socket().close()


def request(peer, client_id, message, qos=1, props=None):
    return peer.client.publish(f"spec/{client_id}/request", json.dumps(message), qos=qos, properties=props)


class BrokerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server()
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls):
        cls.server.close()

    def burst(self, client_id, count, qos, v5):
        loud = Peer(self.port, client_id, v5=v5)
        loud.subscribe(f"spec/{client_id}/response", 1)
        quiet = Peer(self.port, client_id + "-quiet", v5=v5)
        quiet.subscribe(f"spec/{client_id}-quiet/response", 1)
        done = threading.Event()
        latencies = []

        def ping_loop():
            n = 0
            while not done.is_set() or n < 5:
                start = time.monotonic()
                request(quiet, client_id + "-quiet", {"id": f"q{n}", "type": "ping"})
                answer = json.loads(quiet.message().payload)
                self.assertEqual(answer["id"], f"q{n}")
                latencies.append(time.monotonic() - start)
                n += 1

        pinger = threading.Thread(target=ping_loop)
        pinger.start()
        for i in range(count):
            request(loud, client_id, {"id": f"b{i}", "type": "ping"}, qos=qos)
        pongs = refused = 0
        while pongs + refused < count:
            answer = json.loads(loud.message().payload)
            if answer.get("success"):
                pongs += 1
            else:
                self.assertEqual(answer["error"]["code"], "too_many_requests", answer)
                refused += 1
        done.set()
        pinger.join(WAIT)
        latencies.sort()
        p99 = latencies[int((len(latencies) - 1) * 0.99)]
        print(f"\n{client_id}: {count} at QoS {qos} (v{'5' if v5 else '3.1.1'}): {pongs} pongs, "
              f"{refused} too_many_requests; concurrent ping p99 {p99 * 1000:.1f} ms over {len(latencies)}")
        loud.close()
        quiet.close()

    def test_burst_qos0_v311(self):
        self.burst("burst-0-4", 20000, 0, False)

    def test_burst_qos1_v311(self):
        self.burst("burst-1-4", 20000, 1, False)

    def test_burst_qos1_v5(self):
        self.burst("burst-1-5", 20000, 1, True)

    def test_isolation_reason_codes_v5(self):
        b = Peer(self.port, "iso5-b")
        codes = b.subscribe("spec/iso5-a/response")
        self.assertEqual(codes[0].value, 0x87, codes)
        codes = b.subscribe("spec/#")
        self.assertEqual(codes[0].value, 0x87, codes)
        info = request(b, "iso5-a", {"id": "s", "type": "ping"})
        mid, code = b.pubacks.get(timeout=WAIT)
        self.assertEqual(mid, info.mid)
        self.assertEqual(code.value, 0x87)
        b.close()

    def test_request_response_and_user_properties_pass_through(self):
        responder = Peer(self.port, "rr-responder")
        asker = Peer(self.port, "rr-asker")
        responder.subscribe("chat/rr/requests")
        asker.subscribe("chat/rr/replies")
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "chat/rr/replies"
        props.CorrelationData = b"\x01\x02corr"
        props.UserProperty = [("trace", "t-1"), ("tenant", "7")]
        asker.client.publish("chat/rr/requests", b"question", qos=1, properties=props)
        got = responder.message()
        self.assertEqual(got.properties.ResponseTopic, "chat/rr/replies")
        self.assertEqual(got.properties.CorrelationData, b"\x01\x02corr")
        self.assertEqual(got.properties.UserProperty, [("trace", "t-1"), ("tenant", "7")])
        reply = Properties(PacketTypes.PUBLISH)
        reply.CorrelationData = got.properties.CorrelationData
        responder.client.publish(got.properties.ResponseTopic, b"answer", qos=1, properties=reply)
        answer = asker.message()
        self.assertEqual((answer.payload, answer.properties.CorrelationData), (b"answer", b"\x01\x02corr"))
        responder.close()
        asker.close()

    def test_retained_messages_reach_later_subscribers(self):
        writer = Peer(self.port, "ret-writer", v5=False)
        info = writer.client.publish("retained/state", b"on", qos=1, retain=True)
        info.wait_for_publish(WAIT)
        reader = Peer(self.port, "ret-reader")
        reader.subscribe("retained/state")
        got = reader.message()
        self.assertEqual((got.payload, got.retain), (b"on", True))
        writer.close()
        reader.close()

    def test_will_with_a_v5_delay(self):
        watcher = Peer(self.port, "will-watcher")
        watcher.subscribe("chat/wills")
        props = Properties(PacketTypes.WILLMESSAGE)
        props.WillDelayInterval = 1
        dying = Peer(self.port, "will-dying", will=("chat/wills", b"gone", props), session_expiry=60)
        dropped = time.monotonic()
        dying.drop()
        got = watcher.message()
        self.assertEqual(got.payload, b"gone")
        self.assertGreaterEqual(time.monotonic() - dropped, 0.9, "the will waited for its delay")
        watcher.close()

    def test_session_present_and_qos2(self):
        first = Peer(self.port, "persist", clean=False, session_expiry=300)
        first.subscribe("chat/q2", 2)
        first.close()
        again = Peer(self.port, "persist", clean=False, session_expiry=300)
        self.assertTrue(again.flags.session_present)
        sender = Peer(self.port, "q2-sender", v5=False)
        sender.client.publish("chat/q2", b"exactly once", qos=2)
        got = again.message()
        self.assertEqual((got.payload, got.qos), (b"exactly once", 2))
        sender.close()
        again.close()

    def test_keepalive_zero_is_accepted(self):
        idle = Peer(self.port, "ka-zero", v5=False, keepalive=0)
        self.assertEqual(idle.code, 0)
        idle.subscribe("spec/ka-zero/response")
        request(idle, "ka-zero", {"id": "k", "type": "ping"})
        self.assertTrue(json.loads(idle.message().payload)["success"])
        idle.close()


if __name__ == "__main__":
    unittest.main()
