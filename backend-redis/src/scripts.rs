//! The Lua scripts behind the conditional operations (`cas`, `delete_if`,
//! `touch` to no expiry) and, on a cluster only, the combined reads (`get`,
//! `get_and_touch`; a standalone server reads with plain commands instead,
//! which Redis runs several times cheaper than a script: see `store.rs`).
//!
//! Each script touches exactly one key (`KEYS[1]`), so on a cluster it runs
//! on that key's node without any hash tag. Redis runs a script atomically,
//! so "compare the version, then write" cannot interleave with another
//! writer. The version is compared as the 8 bytes at offsets 5..13 of the
//! stored string (`GETRANGE 5 12`, so the value itself never enters Lua;
//! see `envelope.rs`); TTLs are in milliseconds, `'0'` meaning "no expiry".

use std::sync::LazyLock;

use redis::{Cmd, Script};

/// `EVALSHA <sha1> 1 <key>` of `script`; the caller adds the `ARGV`s.
///
/// Built by hand rather than with `Script::key(..).invoke_async`, which
/// copies every key and argument into vectors of its own before building
/// the same command (a measurable share of a busy store's CPU); the
/// `NOSCRIPT` fallback is the store's `eval`.
pub(crate) fn call(script: &Script, key: &str) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(1).arg(key);
    cmd
}

/// `GET` + `PTTL`: nil, or `{stored, pttl}`.
pub(crate) static GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('PTTL', KEYS[1])}",
    )
});

/// Compare-and-set. `ARGV`: expected version (8 bytes), new stored string,
/// TTL in ms. Returns 0 not found, 1 conflict, 2 stored.
pub(crate) static CAS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local cur = redis.call('GETRANGE', KEYS[1], 5, 12)
if cur == '' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if cur ~= ARGV[1] then return 1 end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 2",
    )
});

/// Conditional delete. `ARGV[1]`: expected version (8 bytes). Returns 0
/// not found, 1 conflict, 2 deleted.
pub(crate) static DELETE_IF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local cur = redis.call('GETRANGE', KEYS[1], 5, 12)
if cur == '' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if cur ~= ARGV[1] then return 1 end
redis.call('DEL', KEYS[1])
return 2",
    )
});

/// New expiry. `ARGV[1]`: TTL in ms (`'0'`: none). Returns 1 if the key existed.
pub(crate) static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == '0' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 1",
    )
});

/// Read and set a new expiry. `ARGV[1]` as for `TOUCH`. Returns nil or
/// `{stored, pttl}` with the new TTL.
pub(crate) static GET_AND_TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local v = redis.call('GET', KEYS[1])
if not v then return false end
if ARGV[1] == '0' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {v, redis.call('PTTL', KEYS[1])}",
    )
});
