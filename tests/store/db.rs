//! Fresh, empty databases for the store tests: a SQLite file in a temporary directory, or a new
//! schema on a PostgreSQL server (the store's connections search only that schema, so it holds
//! every table the migrations make, and nothing else).
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (a server URL whose role may create schemas in its
//! database; each test creates and drops its own schema there), or else from a throwaway
//! cluster started once per run of this binary with the `initdb`/`pg_ctl` found on the machine
//! (as the `postgres` OS user when running as root). When neither is possible the PostgreSQL
//! tests fail saying how to provide one: they are never skipped.
//!
//! Adapted from `tests/api/helpers.rs`, reduced to what a store needs (no outages, no server).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::Connection;
use tenure::store::{connect, Store};

/// How long a store call waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// One test's database and the migrated store on it. The database goes (file deleted, or
/// PostgreSQL schema dropped) when this is dropped.
pub struct TestDb {
    pub url: String,
    pub store: Arc<dyn Store>,
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A migrated store on a new SQLite file, in memory-backed `/dev/shm` where there is one
    /// (every commit syncs the file: on a disk that is most of a test's time).
    pub async fn sqlite() -> Self {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm).or_else(|_| tempfile::tempdir())
        } else {
            tempfile::tempdir()
        }
        .expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("tenure.db").display());
        let store = open(&url).await;
        Self {
            url,
            store,
            pg: None,
            _dir: Some(dir),
        }
    }

    /// A migrated store in a new schema of the test PostgreSQL server's database: its tables
    /// are its own, as in a new database, at a fraction of the cost of `CREATE DATABASE`
    /// (which copies a template and checkpoints: hundreds of milliseconds on a busy machine).
    pub async fn postgres() -> Self {
        let server = postgres_admin_url();
        let schema = format!("tenure_store_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to test PostgreSQL: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&mut conn)
            .await
            .expect("create test schema");
        let url = with_search_path(&server, &schema);
        let store = open(&url).await;
        // The migrations went into the test's schema, not into one that tests share.
        let (mine, shared): (bool, bool) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT to_regclass('\"{schema}\".sessions') IS NOT NULL, \
                    to_regclass('public.sessions') IS NOT NULL"
        )))
        .fetch_one(&mut conn)
        .await
        .expect("find the tables");
        assert!(mine && !shared, "the store's tables are in its own schema");
        let _ = conn.close().await;
        Self {
            url,
            store,
            pg: Some((server, schema)),
            _dir: None,
        }
    }
}

async fn open(url: &str) -> Arc<dyn Store> {
    let store = connect(
        url,
        ACQUIRE_TIMEOUT,
        tenure::config::SqliteSynchronous::Full,
    )
    .await
    .expect("connect store");
    store.migrate().await.expect("migrate");
    store
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, schema)) = self.pg.take() else {
            return;
        };
        // Drop runs outside async context: a short-lived runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// `server_url` with `schema` as the only schema its connections search (and create in).
fn with_search_path(server_url: &str, schema: &str) -> String {
    let separator = if server_url.contains('?') { '&' } else { '?' };
    format!("{server_url}{separator}options[search_path]={schema}")
}

/// The PostgreSQL server URL for this run: `TEST_DATABASE_URL`, or a throwaway cluster.
fn postgres_admin_url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Ok(url),
        _ => start_throwaway_cluster(),
    })
    .clone()
    .unwrap_or_else(|why| {
        panic!(
            "PostgreSQL is needed for the store tests and none could be started: {why}\n\
             Provide one with TEST_DATABASE_URL=postgres://user:password@host:port/postgres \
             (a role allowed to create schemas there), or install PostgreSQL so that initdb and \
             pg_ctl exist (Debian/Ubuntu: apt-get install -y postgresql)."
        )
    })
}

fn find_pg_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("pg_ctl").is_file() && dir.join("initdb").is_file() {
                return Some(dir);
            }
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").is_file())
        .collect();
    candidates.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    candidates.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command run as the `postgres` OS user when we are root (initdb refuses root).
fn pg_command(bin: &Path, program: &str, as_postgres: bool) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    }
}

/// `initdb` and `pg_ctl start` a cluster with trust authentication on a free port, and a
/// watchdog that stops and removes it once this test process has exited.
fn start_throwaway_cluster() -> Result<String, String> {
    let bin = find_pg_bin().ok_or("no initdb/pg_ctl on PATH or under /usr/lib/postgresql")?;
    let as_postgres = is_root();
    let dir = std::env::temp_dir().join(format!("tenure-store-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if as_postgres {
        let ok = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(&dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err(
                "running as root but cannot chown the cluster directory to the postgres user"
                    .into(),
            );
        }
    }
    let data = dir.join("data");
    let out = pg_command(&bin, "initdb", as_postgres)
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))?;
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=200",
        dir.display()
    );
    let out = pg_command(&bin, "pg_ctl", as_postgres)
        .arg("-D")
        .arg(&data)
        .args(["-o", &options, "-w", "-l"])
        .arg(dir.join("server.log"))
        .arg("start")
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         {runuser} {pg_ctl} -D {data} stop -m immediate >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        runuser = if as_postgres {
            "runuser -u postgres --"
        } else {
            ""
        },
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &stop])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start the cluster watchdog: {e}"))?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}
