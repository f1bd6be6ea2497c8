//! The configuration's loading and validation.
#![allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error

use super::*;

fn shard(name: &str, from: &str) -> ShardSettings {
    ShardSettings {
        name: name.into(),
        url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
        from: from.parse().unwrap(),
        replicas: Vec::new(),
    }
}

const KEY: &str = "00112233445566778899aabbccddeeff";

fn two_shards() -> Settings {
    Settings {
        shards: vec![
            shard("s0", "2024-01-01T00:00:00Z"),
            shard("s1", "2027-01-01T00:00:00Z"),
        ],
        codes: CodeSettings {
            key: Some(KEY.into()),
        },
        ..Settings::default()
    }
}

fn error_of(s: &Settings) -> String {
    s.validate().unwrap_err().to_string()
}

#[test]
fn a_sound_configuration_passes() {
    let s = two_shards();
    s.validate().unwrap();
    assert_eq!(s.directory_name(), "s0");
    assert_eq!(s.shards[0].first_id().get(), 0);
}

#[test]
fn broken_configurations_are_refused_with_a_reason() {
    type Breaker = Box<dyn Fn(&mut Settings)>;
    let cases: Vec<(Breaker, &str)> = vec![
        (Box::new(|s| s.shards.swap(0, 1)), "increasing order"),
        (
            Box::new(|s| s.shards[1].from = s.shards[0].from),
            "must not overlap",
        ),
        (
            Box::new(|s| s.directory = Some("nope".into())),
            "names no configured shard",
        ),
        (
            Box::new(|s| s.shards[1].url = "mysql://x/y".into()),
            "postgres://",
        ),
        (
            Box::new(|s| s.shards[1].url = "postgres://host:notaport/db".into()),
            "bad url",
        ),
        (Box::new(|s| s.shards[1].name = "s0".into()), "used twice"),
        (Box::new(|s| s.sqlite.readers = 0), "sqlite.readers"),
        (
            Box::new(|s| s.shards[0].from = "2023-06-01T00:00:00Z".parse().unwrap()),
            "before the ID epoch",
        ),
        (Box::new(|s| s.worker_id = Some(1024)), "worker_id"),
        (
            Box::new(|s| s.links.own_hosts = vec!["*.sho.rt".into()]),
            "links.own_hosts",
        ),
        (
            Box::new(|s| s.links.blocked_domains = vec!["https://x.example/a".into()]),
            "links.blocked_domains",
        ),
        (
            Box::new(|s| s.public_url = Some("ftp://x".parse().unwrap())),
            "public_url",
        ),
        (
            Box::new(|s| s.database.query_timeout_ms = Duration::ZERO),
            "query_timeout_ms",
        ),
        (
            Box::new(|s| s.codes.key = Some("0011".into())),
            "codes.key: a code key is 32 hexadecimal digits",
        ),
        (
            Box::new(|s| s.codes.key = Some("z".repeat(32))),
            "codes.key: a code key is 32 hexadecimal digits",
        ),
    ];
    for (break_it, expected) in cases {
        let mut s = two_shards();
        break_it(&mut s);
        let msg = error_of(&s);
        assert!(msg.contains(expected), "expected {expected:?} in {msg:?}");
    }
}

#[test]
fn a_file_and_the_environment_layer_over_the_defaults() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "shortener.toml",
            r#"
            listen = "127.0.0.1:9000"
            worker_id = 5
            [[shards]]
            name = "s0"
            url = "postgres://postgres@127.0.0.1:5432/a"
            from = "2024-01-01T00:00:00Z"
            "#,
        )?;
        jail.set_env("SHORTENER_WORKER_ID", "9");
        jail.set_env("SHORTENER_DATABASE__POOL_SIZE", "3");
        jail.set_env("SHORTENER_CODES__KEY", KEY);
        let s = Settings::load(Some(Path::new("shortener.toml"))).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9000", "from the file");
        assert_eq!(s.worker_id, Some(9), "the environment wins over the file");
        assert_eq!(s.database.pool_size, 3, "nested keys use __");
        assert_eq!(s.links.max_url_length, 2048, "defaults fill the rest");
        assert_eq!(
            s.codes.key.as_deref(),
            Some(KEY),
            "the key from the environment"
        );
        assert!(!format!("{s:?}").contains(KEY), "the key is never printed");
        Ok(())
    });
}

#[test]
fn an_unknown_key_is_an_error_not_a_silent_default() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("c.toml", "lisen = \"127.0.0.1:1\"\n")?;
        let err = Settings::load(Some(Path::new("c.toml"))).unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
        Ok(())
    });
}

#[test]
fn no_shards_means_embedded_and_the_public_url_follows_listen() {
    let s = Settings {
        listen: "127.0.0.1:9001".parse().unwrap(),
        ..Settings::default()
    };
    s.validate().unwrap();
    assert_eq!(s.mode(), Mode::Embedded);
    assert_eq!(s.public_base(), "http://127.0.0.1:9001");
    assert_eq!(two_shards().mode(), Mode::Distributed);
}

#[test]
fn command_line_flags_win_over_the_environment() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("SHORTENER_LISTEN", "127.0.0.1:7000");
        jail.set_env("SHORTENER_DATA_DIR", "/tmp/from-env");
        let s = Settings::load(None).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(s.data_dir, PathBuf::from("/tmp/from-env"));
        let flags = Overrides {
            listen: Some("127.0.0.1:7001".into()),
            data_dir: Some("/tmp/from-flag".into()),
        };
        let s = Settings::load_with(None, &flags).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:7001");
        assert_eq!(s.data_dir, PathBuf::from("/tmp/from-flag"));
        Ok(())
    });
}

#[test]
fn passwords_are_redacted() {
    assert_eq!(
        redact_url("postgres://u:secret@h:5432/d"),
        "postgres://u:***@h:5432/d"
    );
}

#[test]
fn the_shipped_configurations_load_and_the_compose_one_reads_a_replica_of_s0() {
    figment::Jail::expect_with(|_| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let example = Settings::load(Some(&dir.join("example.toml")));
        assert!(example.is_ok(), "{:?}", example.err());
        let compose = Settings::load(Some(&dir.join("compose.toml"))).unwrap();
        assert_eq!(compose.shards.len(), 2);
        assert_eq!(
            compose.shards[0].replicas,
            ["postgres://postgres:shortener@postgres-s0-replica:5432/shortener"]
        );
        assert!(compose.shards[1].replicas.is_empty());
        Ok(())
    });
}

#[test]
fn a_replica_must_be_a_postgres_url_other_than_its_primary() {
    let mut s = Settings {
        shards: vec![shard("s0", "2024-01-01T00:00:00Z")],
        ..Settings::default()
    };
    s.shards[0].replicas = vec!["mysql://x".into()];
    let err = s.validate().unwrap_err().to_string();
    assert!(
        err.contains("replica #1 url must start with postgres://"),
        "{err}"
    );
    s.shards[0].replicas = vec![s.shards[0].url.clone()];
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("is the shard's own url"), "{err}");
    s.shards[0].replicas = vec!["postgres://postgres@127.0.0.1:5434/s0".into()];
    s.validate().unwrap();
    s.database.replica_max_lag_ms = Duration::ZERO;
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("replica_max_lag_ms"), "{err}");
}

#[test]
fn durations_take_the_keys_unit_or_a_humantime_string_from_file_and_environment() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "d.toml",
            r#"
            [cache]
            l1_ttl_s = "2m"
            negative_ttl_s = 7
            [database]
            query_timeout_ms = "1s 500ms"
            "#,
        )?;
        jail.set_env("SHORTENER_DATABASE__CONNECT_TIMEOUT_MS", "250ms");
        jail.set_env("SHORTENER_ANALYTICS__FLUSH_INTERVAL_MS", "40");
        let s = Settings::load(Some(Path::new("d.toml"))).unwrap();
        assert_eq!(s.cache.l1_ttl_s, Duration::from_secs(120));
        assert_eq!(s.cache.negative_ttl_s, Duration::from_secs(7));
        assert_eq!(s.database.query_timeout_ms, Duration::from_millis(1_500));
        assert_eq!(s.database.connect_timeout_ms, Duration::from_millis(250));
        assert_eq!(s.analytics.flush_interval_ms, Duration::from_millis(40));
        Ok(())
    });
}

#[test]
fn a_value_of_the_wrong_type_names_its_key() {
    for (key, value) in [
        ("SHORTENER_DATABASE__QUERY_TIMEOUT_MS", "soon"),
        ("SHORTENER_LISTEN", "localhost"),
        ("SHORTENER_PUBLIC_URL", "not a url"),
        ("SHORTENER_LIMITS__TRUSTED_PROXIES", "[\"proxy.local\"]"),
    ] {
        figment::Jail::expect_with(|jail| {
            jail.set_env(key, value);
            let err = Settings::load(None).unwrap_err().to_string();
            let name = key
                .trim_start_matches("SHORTENER_")
                .replace("__", ".")
                .to_lowercase();
            assert!(err.to_lowercase().contains(&name), "{key}={value}: {err}");
            Ok(())
        });
    }
}
