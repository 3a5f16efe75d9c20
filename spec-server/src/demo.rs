//! `--demo`: a small dataset matching the protocol doc's examples,
//! `public.users` and `public.sensor_readings`, created and seeded once.

use crate::db::{Database, DbError, Dialect};

const SQLITE: &str = r#"
CREATE TABLE IF NOT EXISTS public_users (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  email TEXT UNIQUE,
  status TEXT NOT NULL DEFAULT 'active',
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS public_sensor_readings (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id TEXT NOT NULL,
  value REAL NOT NULL,
  ts TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS public_sensor_readings_device ON public_sensor_readings (device_id);
INSERT INTO public_users (name, email, status, created_at)
SELECT * FROM (VALUES
  ('John Doe', 'john@example.com', 'active', '2024-01-01T10:00:00.000Z'),
  ('Jane Smith', 'jane@example.com', 'active', '2024-01-02T10:00:00.000Z'),
  ('Bob Wilson', 'bob@example.com', 'inactive', '2024-01-03T10:00:00.000Z'),
  ('Alice Brown', 'alice.b@example.com', 'active', '2024-01-04T10:00:00.000Z'),
  ('Carol White', 'carol@example.com', 'pending', '2024-01-05T10:00:00.000Z'))
WHERE NOT EXISTS (SELECT 1 FROM public_users);
INSERT INTO public_sensor_readings (device_id, value, ts)
SELECT 'device-' || (n % 3 + 1), 20.0 + n * 0.5, strftime('%Y-%m-%dT%H:%M:%fZ', '2024-01-01', '+' || n || ' minutes')
FROM (WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < 29) SELECT n FROM seq)
WHERE NOT EXISTS (SELECT 1 FROM public_sensor_readings);
"#;

const POSTGRES: &str = r#"
CREATE TABLE IF NOT EXISTS public.users (
  id BIGSERIAL PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT UNIQUE,
  status TEXT NOT NULL DEFAULT 'active',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS public.sensor_readings (
  id BIGSERIAL PRIMARY KEY,
  device_id TEXT NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  ts TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS sensor_readings_device ON public.sensor_readings (device_id);
INSERT INTO public.users (name, email, status, created_at)
SELECT * FROM (VALUES
  ('John Doe', 'john@example.com', 'active', '2024-01-01T10:00:00Z'::timestamptz),
  ('Jane Smith', 'jane@example.com', 'active', '2024-01-02T10:00:00Z'),
  ('Bob Wilson', 'bob@example.com', 'inactive', '2024-01-03T10:00:00Z'),
  ('Alice Brown', 'alice.b@example.com', 'active', '2024-01-04T10:00:00Z'),
  ('Carol White', 'carol@example.com', 'pending', '2024-01-05T10:00:00Z')) v
WHERE NOT EXISTS (SELECT 1 FROM public.users);
INSERT INTO public.sensor_readings (device_id, value, ts)
SELECT 'device-' || (n % 3 + 1), 20.0 + n * 0.5, '2024-01-01T00:00:00Z'::timestamptz + n * interval '1 minute'
FROM generate_series(0, 29) AS n
WHERE NOT EXISTS (SELECT 1 FROM public.sensor_readings);
"#;

/// Create and seed the demo tables (idempotent).
pub async fn seed(db: &dyn Database) -> Result<(), DbError> {
    let script = match db.dialect() {
        Dialect::Sqlite => SQLITE,
        Dialect::Postgres => POSTGRES,
    };
    db.execute_script(script).await
}
