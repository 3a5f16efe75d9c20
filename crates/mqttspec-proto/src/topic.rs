//! Topic names of the protocol and parsing of the server's request topic.

/// `{prefix}/{client_id}/request`: where a client publishes requests.
pub fn request_topic(prefix: &str, client_id: &str) -> String {
    format!("{prefix}/{client_id}/request")
}

/// `{prefix}/{client_id}/response`: where the server answers.
pub fn response_topic(prefix: &str, client_id: &str) -> String {
    format!("{prefix}/{client_id}/response")
}

/// `{prefix}/{client_id}/notify/{subscription_id}`.
pub fn notify_topic(prefix: &str, client_id: &str, subscription_id: &str) -> String {
    format!("{prefix}/{client_id}/notify/{subscription_id}")
}

/// `{prefix}/{client_id}/notify/+`: every notification of one client.
pub fn notify_filter(prefix: &str, client_id: &str) -> String {
    format!("{prefix}/{client_id}/notify/+")
}

/// Longest client id the server accepts (bytes).
pub const MAX_CLIENT_ID_LEN: usize = 256;

/// Why a client id cannot be used: it must fill exactly one topic level of
/// `{prefix}/{client_id}/...`, so it cannot be empty, hold `/`, `+`, `#`
/// or NUL, or be longer than [`MAX_CLIENT_ID_LEN`] bytes.
pub fn check_client_id(client_id: &str) -> Result<(), &'static str> {
    if client_id.is_empty() {
        Err("the client id is empty")
    } else if client_id.len() > MAX_CLIENT_ID_LEN {
        Err("the client id is longer than 256 bytes")
    } else if client_id.contains(['/', '+', '#', '\0']) {
        Err("the client id holds '/', '+', '#' or NUL: it must fit in one topic level")
    } else {
        Ok(())
    }
}

/// The filter the server subscribes to: `{prefix}/+/request`.
pub fn server_request_filter(prefix: &str) -> String {
    format!("{prefix}/+/request")
}

/// `$share/{group}/{filter}`: an MQTT 5 shared subscription (mosquitto
/// also grants it to 3.1.1 clients); the broker gives each message to one
/// subscriber of the group.
pub fn shared_filter(group: &str, filter: &str) -> String {
    format!("$share/{group}/{filter}")
}

/// `{prefix}/_instance/{instance}/gone`: the will of a server instance (its
/// broker client id), published by the broker when the instance dies.
/// Four levels, so it never matches a request topic.
pub fn instance_gone_topic(prefix: &str, instance: &str) -> String {
    format!("{prefix}/_instance/{instance}/gone")
}

/// The instance named by an [`instance_gone_topic`], if `topic` is one.
pub fn instance_of_gone(prefix: &str, topic: &str) -> Option<String> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix("/_instance/")?;
    let instance = rest.strip_suffix("/gone")?;
    (!instance.is_empty() && !instance.contains('/')).then(|| instance.to_string())
}

/// Client id of a request topic (`{prefix}/{client_id}/request`), if the
/// topic is one under `prefix`.
pub fn client_id_of_request(prefix: &str, topic: &str) -> Option<String> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let client_id = rest.strip_suffix("/request")?;
    (!client_id.is_empty() && !client_id.contains('/')).then(|| client_id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_roundtrip() {
        assert_eq!(request_topic("spec", "c1"), "spec/c1/request");
        assert_eq!(notify_topic("spec", "c1", "s"), "spec/c1/notify/s");
        assert_eq!(
            client_id_of_request("spec", "spec/c1/request").as_deref(),
            Some("c1")
        );
        assert_eq!(client_id_of_request("spec", "spec/a/b/request"), None);
        assert_eq!(client_id_of_request("spec", "other/c1/request"), None);
        assert_eq!(client_id_of_request("spec", "spec//request"), None);
        assert_eq!(notify_filter("spec", "c1"), "spec/c1/notify/+");
        let gone = instance_gone_topic("spec", "srv-a");
        assert_eq!(instance_of_gone("spec", &gone).as_deref(), Some("srv-a"));
        assert_eq!(instance_of_gone("spec", "spec/_instance/a/b/gone"), None);
        assert_eq!(client_id_of_request("spec", &gone), None);
        assert_eq!(
            shared_filter("g", &server_request_filter("spec")),
            "$share/g/spec/+/request"
        );
    }

    #[test]
    fn client_ids_must_fill_one_topic_level() {
        assert!(check_client_id("dash-7f3a_b.c").is_ok());
        for bad in ["", "a+b", "#", "x/y", "a\0b"] {
            assert!(check_client_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_client_id(&"x".repeat(MAX_CLIENT_ID_LEN)).is_ok());
        assert!(check_client_id(&"x".repeat(MAX_CLIENT_ID_LEN + 1)).is_err());
    }
}
