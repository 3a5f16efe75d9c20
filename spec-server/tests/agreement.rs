//! The SQL the server generates and `mqttspec_proto::matches` must agree:
//! random rows in SQLite and in a real PostgreSQL, random filters (every
//! operator, mixed value types, AND/OR), same ids both ways. Sorting is
//! checked against `compare_rows` too.

use e2e::postgres::Postgres;
use mqttspec_proto::filter::compare_rows;
use mqttspec_proto::options::Logic;
use mqttspec_proto::{matches, Direction, Filter, FilterOp, Row, Sort};
use serde_json::{json, Value};
use spec_server::db::sql::SqlBuilder;
use spec_server::db::{self, Database};
use spec_server::registry::Registry;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const TEXTS: [&str; 10] = ["a", "B", "ab", "a_b", "a%b", "10", "9", "Zed", "abc", ""];

fn random_value(rng: &mut Rng, column: &str) -> Value {
    match (column, rng.below(10)) {
        (_, 0) => Value::Null,
        ("n", _) => json!(rng.below(21) as i64 - 10),
        ("r", _) => json!((rng.below(41) as f64 - 20.0) / 4.0),
        _ => json!(*rng.pick(&TEXTS)),
    }
}

fn random_operand(rng: &mut Rng, column: &str) -> Value {
    let scalar = |rng: &mut Rng| match rng.below(6) {
        0 => json!(rng.below(21) as i64 - 10),
        1 => json!((rng.below(41) as f64 - 20.0) / 4.0),
        2 => json!(format!("{}", rng.below(21) as i64 - 10)),
        3 => json!(rng.below(2) == 0),
        _ => random_value(rng, column),
    };
    scalar(rng)
}

fn random_pattern(rng: &mut Rng) -> String {
    const PARTS: [&str; 9] = ["%", "_", "a", "b", "\\%", "\\_", "1", "B", "Z"];
    (0..1 + rng.below(3)).map(|_| *rng.pick(&PARTS)).collect()
}

fn random_filter(rng: &mut Rng) -> Filter {
    let column = *rng.pick(&["n", "r", "s"]);
    let operator = *rng.pick(&FilterOp::ALL);
    let value = match operator {
        FilterOp::In | FilterOp::NotIn => Value::Array(
            (0..rng.below(4))
                .map(|_| random_operand(rng, column))
                .collect(),
        ),
        FilterOp::Between => json!([random_operand(rng, column), random_operand(rng, column)]),
        FilterOp::Like | FilterOp::Ilike => json!(random_pattern(rng)),
        FilterOp::IsNull | FilterOp::IsNotNull => Value::Null,
        _ => random_operand(rng, column),
    };
    let mut filter = Filter::new(column, operator, value);
    if rng.below(3) == 0 {
        filter.logic_operator = Logic::Or;
    }
    filter
}

async fn check_agreement(db: &dyn Database, create: &str, seed: u64) {
    db.execute_script(create).await.expect("table created");
    let registry = Registry::load(db, None).await.expect("schema read");
    let entity = registry.find(Some("public"), "t").expect("entity public.t");
    let mut rng = Rng(seed);
    let all: Vec<String> = ["id", "n", "r", "s"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for id in 1..=80 {
        let mut row = serde_json::Map::new();
        row.insert("id".into(), json!(id));
        for c in ["n", "r", "s"] {
            row.insert(c.into(), random_value(&mut rng, c));
        }
        let pairs: Vec<(&String, &Value)> = row.iter().collect();
        let stmt = SqlBuilder::new(db.dialect(), &entity)
            .insert(&pairs)
            .expect("insert built");
        db.query(stmt.0, stmt.1).await.expect("row inserted");
    }
    let rows: Vec<Row> = {
        let (sql, params) = SqlBuilder::new(db.dialect(), &entity)
            .select(&all, &[], &[], None, None)
            .expect("select built");
        db.query(sql, params).await.expect("rows read")
    };
    assert_eq!(rows.len(), 80);
    for round in 0..400 {
        let filters: Vec<Filter> = (0..1 + rng.below(4))
            .map(|_| random_filter(&mut rng))
            .collect();
        let (sql, params) = SqlBuilder::new(db.dialect(), &entity)
            .select(&all, &filters, &[], None, None)
            .expect("select built");
        let from_sql: Vec<Value> = db
            .query(sql.clone(), params)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {sql} failed: {e}"))
            .iter()
            .map(|r| r["id"].clone())
            .collect();
        let from_matches: Vec<Value> = rows
            .iter()
            .filter(|r| matches(&filters, r))
            .map(|r| r["id"].clone())
            .collect();
        assert_eq!(
            from_sql,
            from_matches,
            "round {round}: SQL and matches disagree on {}\nSQL: {sql}",
            serde_json::to_string(&filters).unwrap()
        );
    }
    for column in ["n", "r", "s"] {
        for direction in [Direction::Asc, Direction::Desc] {
            let sort = vec![
                Sort {
                    column: column.into(),
                    direction,
                },
                Sort {
                    column: "id".into(),
                    direction: Direction::Asc,
                },
            ];
            let (sql, params) = SqlBuilder::new(db.dialect(), &entity)
                .select(&all, &[], &sort, None, None)
                .expect("select built");
            let from_sql: Vec<Value> = db
                .query(sql, params)
                .await
                .unwrap()
                .iter()
                .map(|r| r["id"].clone())
                .collect();
            let mut sorted = rows.clone();
            sorted.sort_by(|a, b| compare_rows(a, b, &sort));
            let expected: Vec<Value> = sorted.iter().map(|r| r["id"].clone()).collect();
            assert_eq!(from_sql, expected, "sort by {column} {direction:?}");
        }
    }
}

#[tokio::test]
async fn sqlite_sql_agrees_with_matches() {
    let db = db::open("sqlite::memory:").await.unwrap();
    let create = "CREATE TABLE public_t (id INTEGER PRIMARY KEY, n INTEGER, r REAL, s TEXT);";
    for seed in [1, 0x9e37_79b9_7f4a_7c15] {
        db.execute_script("DROP TABLE IF EXISTS public_t;")
            .await
            .unwrap();
        check_agreement(db.as_ref(), create, seed).await;
    }
}

#[tokio::test]
async fn postgres_sql_agrees_with_matches() {
    let pg =
        Postgres::start("agree").expect("PostgreSQL starts (install the `postgresql` package)");
    let db = db::open(&pg.url()).await.unwrap();
    let create =
        "CREATE TABLE public.t (id BIGINT PRIMARY KEY, n BIGINT, r DOUBLE PRECISION, s TEXT);";
    check_agreement(db.as_ref(), create, 7).await;
}
