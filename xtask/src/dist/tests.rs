//! Tests of the package builder's pieces that need no release build and no
//! root: the maintainer scripts it writes and the unit files it ships. The
//! whole builder runs in `cargo xtask dist --verify`.

use std::{path::PathBuf, process::Command};

use super::deb::{self, Package};
use crate::release::Binaries;

fn packages() -> Vec<Package> {
    let none = PathBuf::from("/nonexistent");
    deb::packages(&Binaries {
        soap_bridge: none.clone(),
        replicator: none.clone(),
        sessionctl: none.clone(),
        example_app: none,
    })
}

#[test]
fn maintainer_scripts_are_filled_in_and_parse() {
    let dir = std::env::temp_dir().join(format!("xtask-dist-scripts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for package in packages() {
        let Some(daemon) = &package.daemon else {
            continue;
        };
        for script in ["postinst", "prerm", "postrm"] {
            let text = deb::maintainer_script(script, &package, daemon).unwrap();
            assert!(text.starts_with("#!/bin/sh\n"), "{script}");
            assert!(!text.contains('@'), "{script} of {}: {text}", package.name);
            assert!(text.contains(daemon.user), "{script} of {}", package.name);
            let path = dir.join(format!("{}.{script}", package.name));
            std::fs::write(&path, &text).unwrap();
            let status = Command::new("sh").arg("-n").arg(&path).status().unwrap();
            assert!(status.success(), "sh -n {}: {text}", path.display());
            // systemctl only behind the systemd check.
            let commands = text.lines().filter(|l| !l.trim_start().starts_with('#'));
            for line in commands.filter(|l| l.contains("systemctl ")) {
                let before = &text[..text.find(line).unwrap()];
                assert!(
                    before.contains("if [ -d /run/systemd/system ]"),
                    "{script}: {line} is not behind the systemd check"
                );
            }
        }
        let postrm = deb::maintainer_script("postrm", &package, daemon).unwrap();
        match daemon.state_dir {
            Some(dir) => assert!(postrm.contains(&format!("rm -rf /var/lib/{dir}"))),
            None => assert!(!postrm.contains("rm -rf")),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn units_are_hardened_and_do_not_restart_loop() {
    let root = crate::project_root();
    for package in packages() {
        let Some(daemon) = &package.daemon else {
            continue;
        };
        let unit = std::fs::read_to_string(root.join("deploy/systemd").join(daemon.unit)).unwrap();
        let has = |line: &str| unit.lines().any(|l| l.trim() == line);
        for line in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=",
            "Restart=on-failure",
            "RestartSec=5s",
            "StartLimitBurst=5",
            "StartLimitIntervalSec=120",
        ] {
            assert!(has(line), "{}: no {line}", daemon.unit);
        }
        assert!(has(&format!("User={}", daemon.user)), "{}", daemon.unit);
        assert!(
            has(&format!(
                "ExecStart=/usr/bin/{} --config /etc/memorycached/{}",
                package.bin, daemon.config
            )),
            "{}",
            daemon.unit
        );
        let writable: Vec<String> = unit
            .lines()
            .filter(|l| l.starts_with("ReadWritePaths=") || l.starts_with("StateDirectory="))
            .map(str::to_owned)
            .collect();
        match daemon.state_dir {
            Some(dir) => assert_eq!(
                writable,
                vec![
                    format!("StateDirectory={dir}"),
                    format!("ReadWritePaths=/var/lib/{dir}")
                ],
                "{}",
                daemon.unit
            ),
            None => assert!(writable.is_empty(), "{}: {writable:?}", daemon.unit),
        }
    }
}

#[test]
fn every_daemon_ships_a_default_config_and_only_daemons_do() {
    let root = crate::project_root();
    for package in packages() {
        match &package.daemon {
            Some(daemon) => {
                assert!(
                    root.join("deploy/config").join(daemon.config).is_file(),
                    "{}: no deploy/config/{}",
                    package.name,
                    daemon.config
                );
                assert_eq!(
                    package.conffile(),
                    Some(format!("/etc/memorycached/{}", daemon.config))
                );
            }
            None => assert!(package.conffile().is_none() && package.unit_path().is_none()),
        }
    }
}
