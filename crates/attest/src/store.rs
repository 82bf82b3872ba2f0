//! The embedded store (redb): policies, token signing keys, cached collateral, settings.
//!
//! One file, `<data dir>/confkube.redb`, created with mode 0600 in a 0700 directory because it
//! holds private keys. Every write is its own transaction committed with immediate durability
//! before the caller acknowledges it, so a crash (even `kill -9`) loses no acknowledged write.

use redb::{Database, ReadableDatabase, TableDefinition};
use std::path::{Path, PathBuf};

const POLICIES: TableDefinition<&str, &str> = TableDefinition::new("policies");
const KEYS: TableDefinition<&str, &str> = TableDefinition::new("signing_keys");
const COLLATERAL: TableDefinition<&str, &str> = TableDefinition::new("collateral");
const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
const SECRETS: TableDefinition<&str, &str> = TableDefinition::new("secrets");

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory or file could not be created or opened.
    #[error("store {path}: {message}")]
    Open {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The file exists but is empty or cannot be read as a store: starting on it would mean new
    /// signing keys and the default policy, silently.
    #[error(
        "store {path} is damaged ({reason}); refusing to start with new signing keys and the \
         default policy: restore it from a backup, or pass --init-store to move it aside and \
         start with an empty store"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Another process holds the store.
    #[error(
        "store {path} is in use by another confkube process; stop it, or give this one its own \
         --data-dir"
    )]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// A transaction failed.
    #[error("store {path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// What [`Store::open_with`] does with an existing file that is empty or unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IfDamaged {
    /// Refuse to open it ([`StoreError::Damaged`]).
    Refuse,
    /// Move it aside (renamed to `confkube.redb.damaged-<unix seconds>`, never deleted) and
    /// create an empty store (`--init-store`).
    MoveAside,
}

/// The store handle; cheap to share (`Arc<Store>`).
#[derive(Debug)]
pub struct Store {
    db: Database,
    path: PathBuf,
}

/// Which table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Policies by name (`SgxEnclave`).
    Policies,
    /// Signing keys by kid (JSON with the private key).
    Keys,
    /// Collateral by platform key (dcap-qvl JSON).
    Collateral,
    /// Settings (admin token hash, ...).
    Settings,
    /// Released secrets by name (versions, policies, values sealed under the KEK).
    Secrets,
}

impl Table {
    fn def(self) -> TableDefinition<'static, &'static str, &'static str> {
        match self {
            Self::Policies => POLICIES,
            Self::Keys => KEYS,
            Self::Collateral => COLLATERAL,
            Self::Settings => SETTINGS,
            Self::Secrets => SECRETS,
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`; an existing file that is empty or unreadable is
    /// refused.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, IfDamaged::Refuse)
    }

    /// Opens (or creates) the store in `dir`, with `if_damaged` for an existing file that is
    /// empty (zero length) or that redb cannot open. The file lock is taken here: a second
    /// process gets [`StoreError::Locked`].
    pub fn open_with(dir: &Path, if_damaged: IfDamaged) -> Result<Self, StoreError> {
        match Self::open_once(dir) {
            Err(StoreError::Damaged { path, reason }) if if_damaged == IfDamaged::MoveAside => {
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let aside = path.with_file_name(format!("confkube.redb.damaged-{stamp}"));
                std::fs::rename(&path, &aside).map_err(|e| StoreError::Open {
                    path: path.clone(),
                    message: format!("cannot move the damaged store aside: {e}"),
                })?;
                tracing::warn!(
                    damaged = %aside.display(),
                    %reason,
                    "--init-store: the damaged store was moved aside; starting with an empty store"
                );
                Self::open_once(dir)
            }
            other => other,
        }
    }

    fn open_once(dir: &Path) -> Result<Self, StoreError> {
        let open_err = |path: &Path, e: &dyn std::fmt::Display| StoreError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(dir, &e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| open_err(dir, &e))?;
        }
        let path = dir.join("confkube.redb");
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            return Err(StoreError::Damaged {
                path,
                reason: "the file is empty".into(),
            });
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&path).map_err(|e| open_err(&path, &e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| open_err(&path, &e))?;
        }
        let existed = file.metadata().is_ok_and(|m| m.len() > 0);
        let backend = redb::backends::FileBackend::new(file).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.clone() },
            e => open_err(&path, &e),
        })?;
        let db = redb::Builder::new()
            .create_with_backend(backend)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    StoreError::Locked { path: path.clone() }
                }
                e if existed => StoreError::Damaged {
                    path: path.clone(),
                    reason: e.to_string(),
                },
                e => open_err(&path, &e),
            })?;
        let store = Self { db, path };
        // Create every table up front so that reads never meet a missing table.
        store.write(|txn| {
            for t in [POLICIES, KEYS, COLLATERAL, SETTINGS, SECRETS] {
                txn.open_table(t)?;
            }
            Ok(())
        })?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.io(e))?;
        f(&txn).map_err(|e| self.io(e))?;
        txn.commit().map_err(|e| self.io(e))
    }

    /// Reads a value.
    pub fn get(&self, table: Table, key: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let t = txn.open_table(table.def()).map_err(|e| self.io(e))?;
        let v = t.get(key).map_err(|e| self.io(e))?;
        Ok(v.map(|g| g.value().to_string()))
    }

    /// Writes a value durably; returns once committed.
    pub fn put(&self, table: Table, key: &str, value: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(table.def())?.insert(key, value)?;
            Ok(())
        })
    }

    /// Removes a value.
    pub fn remove(&self, table: Table, key: &str) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(table.def())?.remove(key)?;
            Ok(())
        })
    }

    /// Every (key, value) of a table, in key order.
    pub fn list(&self, table: Table) -> Result<Vec<(String, String)>, StoreError> {
        use redb::ReadableTable;
        let txn = self.db.begin_read().map_err(|e| self.io(e))?;
        let t = txn.open_table(table.def()).map_err(|e| self.io(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.io(e))? {
            let (k, v) = item.map_err(|e| self.io(e))?;
            out.push((k.value().to_string(), v.value().to_string()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("confkube-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn put_get_list_remove_and_reopen() {
        let dir = tmp("basic");
        {
            let s = Store::open(&dir).unwrap();
            s.put(Table::Policies, "SgxEnclave", "{}").unwrap();
            s.put(Table::Keys, "b", "2").unwrap();
            s.put(Table::Keys, "a", "1").unwrap();
            assert_eq!(
                s.get(Table::Policies, "SgxEnclave").unwrap().as_deref(),
                Some("{}")
            );
            assert_eq!(s.get(Table::Settings, "x").unwrap(), None);
            s.remove(Table::Keys, "b").unwrap();
        }
        let s = Store::open(&dir).unwrap();
        assert_eq!(
            s.list(Table::Keys).unwrap(),
            vec![("a".to_string(), "1".to_string())]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(s.path()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dmode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(dmode, 0o700);
        }
    }

    #[test]
    fn empty_or_truncated_stores_are_refused_unless_init_store() {
        let dir = tmp("damaged");
        {
            let s = Store::open(&dir).unwrap();
            s.put(Table::Keys, "kid", &"k".repeat(100_000)).unwrap();
        }
        let file = dir.join("confkube.redb");
        let full = std::fs::read(&file).unwrap();
        let msg = |reason: &str| {
            format!(
                "store {} is damaged ({reason}); refusing to start with new signing keys and \
                 the default policy: restore it from a backup, or pass --init-store to move it \
                 aside and start with an empty store",
                file.display()
            )
        };

        std::fs::write(&file, b"").unwrap();
        let e = Store::open(&dir).unwrap_err();
        assert_eq!(e.to_string(), msg("the file is empty"));
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            0,
            "nothing written"
        );

        for len in [1, 100, full.len() / 2] {
            std::fs::write(&file, &full[..len]).unwrap();
            let e = Store::open(&dir).unwrap_err();
            assert!(
                matches!(&e, StoreError::Damaged { path, .. } if path == &file),
                "{len}: {e}"
            );
            assert_eq!(
                std::fs::read(&file).unwrap(),
                &full[..len],
                "{len}: untouched"
            );
        }

        // --init-store: the damaged file is kept aside, and a new store starts empty.
        let s = Store::open_with(&dir, IfDamaged::MoveAside).unwrap();
        assert_eq!(s.list(Table::Keys).unwrap(), vec![]);
        let aside: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("confkube.redb.damaged-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(
            std::fs::read(dir.join(&aside[0])).unwrap(),
            &full[..full.len() / 2]
        );
        // And a second process meets the lock.
        let e = Store::open(&dir).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "store {} is in use by another confkube process; stop it, or give this one its \
                 own --data-dir",
                file.display()
            )
        );
    }

    #[test]
    fn open_errors_name_the_path() {
        let f = tmp("file");
        std::fs::write(&f, b"not a dir").unwrap();
        let e = Store::open(&f).unwrap_err().to_string();
        assert!(e.starts_with(&format!("store {}: ", f.display())), "{e}");
    }
}
