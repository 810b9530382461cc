//! Unit tests of the settings: TOML parsing, validation, secrets in files,
//! the seal and LemonLDAP::NG sections.

use super::*;

#[test]
fn seal_settings() {
    let dir = std::env::temp_dir().join(format!("bridge-seal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("seal.keys");
    std::fs::write(&keys, format!("4:{}\n", "ab".repeat(32))).unwrap();
    let c = Config::from_toml(&format!(
        "[seal]\nkeys_file = {:?}\naccept_unsealed = true\n",
        keys.display().to_string()
    ))
    .unwrap();
    c.validate().unwrap();
    let seal = c.sessions_config().unwrap().seal.unwrap();
    assert_eq!(seal.keyring.current().id(), 4);
    assert!(seal.accept_unsealed && !seal.allow_storable);
    assert!(!format!("{:?}", c.sessions_config().unwrap()).contains(&"ab".repeat(8)));
    // Storable with a seal: refused with the reason, unless asked for.
    let mut storable = c.clone();
    storable.codec = "storable".into();
    let err = storable.validate().unwrap_err().to_string();
    assert!(err.contains("Perl"), "{err}");
    storable.seal.allow_storable = true;
    storable.validate().unwrap();
    // Switches without keys are a mistake, not silently ignored.
    let lone = Config {
        seal: SealSettings {
            accept_unsealed: true,
            ..SealSettings::default()
        },
        ..Config::default()
    };
    assert!(lone.validate().is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn toml_and_validation() {
    let c = Config::from_toml(
        "listen = \"127.0.0.1:0\"\nprincipal = \"uid\"\ntimeout = 60\n[auth]\ntype = \"bearer\"\ntoken = \"t\"\n",
    )
    .unwrap();
    assert_eq!(c.principal.as_deref(), Some("uid"));
    assert_eq!(
        c.sessions_config().unwrap().reverse_key_refresh,
        Duration::from_secs(60),
        "the default refresh window"
    );
    let every_save = Config::from_toml("principal = \"uid\"\nreverse_key_refresh = 0\n").unwrap();
    assert!(
        every_save
            .sessions_config()
            .unwrap()
            .reverse_key_refresh
            .is_zero()
    );
    let too_long = Config::from_toml("reverse_key_refresh = 90000\n").unwrap();
    assert!(too_long.validate().is_err(), "longer than a day");
    assert!(matches!(c.auth, Some(Auth::Bearer { .. })));
    assert!(!format!("{c:?}").contains("\"t\""));
    c.validate().unwrap();
    Config::default().validate().unwrap();
    let e = Config::from_toml("timeout = 1\nnope = 1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2, column 1: unknown field `nope`"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let storable = Config {
        codec: "storable".into(),
        ..Config::default()
    };
    storable.validate().unwrap();
    assert_eq!(storable.codec().unwrap(), Codec::Storable);
    assert!(
        Config {
            codec: "xml".into(),
            ..Config::default()
        }
        .validate()
        .is_err()
    );
    assert!(
        Config {
            body_limit: 0,
            ..Config::default()
        }
        .validate()
        .is_err()
    );
    assert!(
        Config {
            principal: Some(String::new()),
            ..Config::default()
        }
        .validate()
        .is_err()
    );
    let empty = Config {
        auth: Some(Auth::Bearer {
            token: String::new(),
        }),
        ..Config::default()
    };
    assert!(empty.validate().is_err());
    let admin = Config::from_toml("[admin]\nenabled = true\n").unwrap();
    assert!(admin.admin.enabled);
    assert!(admin.validate().is_err(), "admin without [auth] is refused");
    let bad_index = Config {
        principal: None,
        principal_index: true,
        ..Config::default()
    };
    assert!(bad_index.validate().is_err());
}

#[test]
fn auth_secrets_from_files() {
    let dir = std::env::temp_dir().join(format!("soap-bridge-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "t0ken-from-file\n").unwrap();
    let password = dir.join("password");
    std::fs::write(&password, "pass word\r\n").unwrap();
    let toml = |body: String| Config::from_toml(&format!("[auth]\n{body}"));

    let c = toml(format!("type = \"bearer\"\ntoken_file = {token:?}\n")).unwrap();
    assert_eq!(
        c.auth,
        Some(Auth::Bearer {
            token: "t0ken-from-file".into()
        })
    );
    c.validate().unwrap();
    let c = toml(format!(
        "type = \"basic\"\nuser = \"u\"\npassword_file = {password:?}\n"
    ))
    .unwrap();
    assert_eq!(
        c.auth,
        Some(Auth::Basic {
            user: "u".into(),
            password: "pass word".into()
        })
    );

    // A missing file names the file; the error never holds a secret.
    let missing = dir.join("nope");
    let e = toml(format!("type = \"bearer\"\ntoken_file = {missing:?}\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("token_file") && e.contains("nope"), "{e}");
    let e = toml(format!(
        "type = \"bearer\"\ntoken = \"inline\"\ntoken_file = {token:?}\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("not both") && !e.contains("inline"), "{e}");
    assert!(toml("type = \"bearer\"\n".into()).is_err());
    // An empty file is an empty token: refused by validate.
    std::fs::write(&token, "\n").unwrap();
    let c = toml(format!("type = \"bearer\"\ntoken_file = {token:?}\n")).unwrap();
    assert!(c.validate().is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn llng_section() {
    let c = Config::from_toml("[llng]\nkey = \"k3y\"\nclock_tolerance_secs = 30\n").unwrap();
    assert_eq!(c.llng.key.as_deref(), Some("k3y"));
    assert_eq!(c.llng.clock_tolerance_secs, 30);
    c.validate().unwrap();
    assert!(!format!("{c:?}").contains("k3y"), "the key is redacted");
    assert_eq!(Config::default().llng.clock_tolerance_secs, 15);
    assert!(
        Config::from_toml("[llng]\nkey = \"\"\n")
            .unwrap()
            .validate()
            .is_err()
    );
    assert!(
        Config::from_toml("[llng]\nclock_tolerance_secs = 0\n")
            .unwrap()
            .validate()
            .is_err()
    );
    assert!(Config::from_toml("[llng]\nnope = 1\n").is_err());
}

#[test]
fn debug_output_hides_the_store_passwords() {
    let config = Config {
        store: "memcacheds://app:s3cret-pw@10.0.0.1:11211?ca=/etc/ca.pem".into(),
        local: Some("redis://app:l0cal-pw@127.0.0.1:6379".into()),
        ..Config::default()
    };
    let shown = format!("{config:?}");
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    assert!(!shown.contains("l0cal-pw"), "{shown}");
    assert!(
        shown.contains("memcacheds://app:***@10.0.0.1:11211"),
        "{shown}"
    );
}
