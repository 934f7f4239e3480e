//! A scratch PostgreSQL schema per test, on the server the suite runs against, dropped when the
//! test ends.

/// The PostgreSQL the suite runs against: `GRIDFLOW_TEST_DATABASE_URL` (set by scripts/test),
/// else `DATABASE_URL`, else the local server. One that cannot be reached fails the test.
pub fn postgres_url() -> String {
    ["GRIDFLOW_TEST_DATABASE_URL", "DATABASE_URL"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|url| !url.is_empty()))
        .unwrap_or_else(|| "postgresql://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A scratch schema, dropped when the test ends.
pub struct ScratchSchema {
    pub client: postgres::Client,
    pub name: String,
}

impl ScratchSchema {
    pub fn new(tag: &str) -> ScratchSchema {
        let url = postgres_url();
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap_or_else(|error| {
            panic!("PostgreSQL at {url} cannot be reached ({error}); ./scripts/test starts one")
        });
        let name = format!("gridflow_test_{tag}_{}", std::process::id());
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
            .unwrap();
        ScratchSchema { client, name }
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}
