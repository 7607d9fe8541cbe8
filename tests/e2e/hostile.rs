//! The hostile-plugin suite: one guest per attack. Each test proves the attack
//! is contained with the right typed error *and* that the same host then
//! serves an honest plugin call correctly.

use std::sync::Arc;
use std::time::Duration;

use tessera_runtime::api::strategies::Context;
use tessera_runtime::api::types::Value;
use tessera_runtime::{
    CallError, Grants, InstallError, InstallRequest, Limits, MemoryState, Plugin, PluginKind,
    Runtime, StateScope, StateStore, TrapReason,
};
use tessera_tests::{
    assert_honest_call_works, assert_honest_plugin_works, batch, install, install_with, param,
    plugins, program, request, spend_batch, test_programs as guests, wat_segment,
    wat_segment_component,
};

use super::runtime;

/// Runs a segment guest's `evaluate` once and returns the trap reason.
fn trap_of(result: Result<impl std::fmt::Debug, CallError>) -> TrapReason {
    match result {
        Err(CallError::Trap { reason, .. }) => reason,
        other => panic!("expected a trap, got {other:?}"),
    }
}

/// Runs one row through a hostile segment guest on a fresh runtime, checks
/// that the same runtime then serves an honest call correctly, and returns why
/// the guest was stopped.
fn attack(guest: &str, limits: Limits) -> TrapReason {
    let runtime = runtime();
    let hostile = install_with(&runtime, &program(guest), PluginKind::Segment, limits);
    let reason = trap_of(hostile.evaluate(&[], &spend_batch(&[1.0])));
    assert_honest_call_works(&runtime);
    reason
}

#[test]
fn infinite_loop_runs_out_of_fuel_and_the_host_serves_the_next_call() {
    let runtime = runtime();
    let honest = install(&runtime, plugins::THRESHOLD, PluginKind::Segment);
    let hostile = install(
        &runtime,
        &program(guests::LOOP_FOREVER),
        PluginKind::Segment,
    );
    let budget = hostile.limits().fuel_for(3);
    let reason = trap_of(hostile.evaluate(&[], &spend_batch(&[1.0, 2.0, 3.0])));
    assert_eq!(reason, TrapReason::OutOfFuel { budget });
    assert_honest_plugin_works(&honest);
}

#[test]
fn infinite_loop_hits_the_time_limit_when_fuel_is_plentiful() {
    let runtime = runtime();
    let limits = Limits {
        fuel_base: runtime.config().caps.fuel_base,
        time_base: Duration::from_millis(200),
        ..Limits::default()
    };
    let hostile = install_with(
        &runtime,
        &program(guests::LOOP_FOREVER),
        PluginKind::Segment,
        limits.clone(),
    );
    let reason = trap_of(hostile.evaluate(&[], &spend_batch(&[1.0])));
    assert_eq!(
        reason,
        TrapReason::Timeout {
            limit: limits.time_for(1)
        }
    );
    assert_honest_call_works(&runtime);
}

#[test]
fn recursion_with_small_frames_overflows_the_wasm_stack() {
    assert_eq!(
        attack(guests::STACK_OVERFLOW, Limits::default()),
        TrapReason::StackOverflow
    );
}

#[test]
fn recursion_with_large_frames_overflows_the_shadow_stack() {
    assert_eq!(
        attack(guests::SHADOW_STACK_OVERFLOW, Limits::default()),
        TrapReason::MemoryOutOfBounds
    );
}

#[test]
fn memory_bomb_is_stopped_at_the_memory_limit() {
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    match attack(guests::MEMORY_BOMB, limits) {
        TrapReason::MemoryLimit { limit, requested } => {
            assert_eq!(limit, 32 << 20);
            assert!(requested > limit, "asked for {requested}");
        }
        other => panic!("expected the memory limit, got {other:?}"),
    }
}

/// A core module implementing the segment world whose `describe` grows its
/// function table without end: no language compiler emits this, so it is WAT.
const TABLE_BOMB: &str = r#"
(module
  (table $t 1 funcref)
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) i32.const 1024)
  (func (export "describe") (result i32)
    (loop $grow
      (drop (table.grow $t (ref.null func) (i32.const 1000)))
      (br $grow))
    unreachable)
  (func (export "validate") (param i32 i32) (result i32) unreachable)
  (func (export "evaluate")
    (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i64) (result i32) unreachable)
)
"#;

#[test]
fn table_bomb_is_stopped_at_the_table_limit_during_install() {
    let runtime = runtime();
    let component = wat_segment_component(TABLE_BOMB);
    match runtime.install(&component, request(PluginKind::Segment, Limits::default())) {
        Err(InstallError::Describe(error)) => match error.trap_reason() {
            Some(TrapReason::TableLimit { limit, requested }) => {
                assert_eq!(*limit, Limits::default().table_elements);
                assert!(requested > limit);
            }
            other => panic!("expected the table limit, got {other:?} from {error}"),
        },
        other => panic!("expected describe to trap, got {other:?}"),
    }
    assert_honest_call_works(&runtime);
}

/// A core module implementing the segment world whose `evaluate` returns a
/// tier dictionary of 100,000 strings that all point at the same 1 MiB: 24
/// MiB of guest memory that would make the host copy ~100 GB.
fn alias_bomb() -> String {
    wat_segment(
        "alias-bomb",
        40,
        "",
        r#"    (local $i i32) (local $p i32)
    (local.set $p (i32.const 0x10000))
    (block $done
      (loop $fill
        (br_if $done (i32.ge_u (local.get $i) (i32.const 100000)))
        (i32.store (local.get $p) (i32.const 0x100000))
        (i32.store offset=4 (local.get $p) (i32.const 0x100000))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $fill)))
    ;; ok(memberships { member: [], scores: [], tiers: some({ dictionary, codes: [] }) })
    (i32.store8 (i32.const 0x100) (i32.const 0))
    (i32.store (i32.const 0x104) (i32.const 0x400)) (i32.store (i32.const 0x108) (i32.const 0))
    (i32.store (i32.const 0x10c) (i32.const 0x400)) (i32.store (i32.const 0x110) (i32.const 0))
    (i32.store8 (i32.const 0x114) (i32.const 1))
    (i32.store (i32.const 0x118) (i32.const 0x10000)) (i32.store (i32.const 0x11c) (i32.const 100000))
    (i32.store (i32.const 0x120) (i32.const 0x400)) (i32.store (i32.const 0x124) (i32.const 0))
    i32.const 0x100"#,
    )
}

#[test]
fn strings_aliasing_one_buffer_cannot_make_the_host_copy_past_the_cap() {
    let runtime = runtime();
    let hostile = runtime
        .install(
            &wat_segment_component(&alias_bomb()),
            request(PluginKind::Segment, Limits::default()),
        )
        .expect("the alias bomb describes itself honestly");
    assert_eq!(
        trap_of(hostile.evaluate(&[], &spend_batch(&[1.0]))),
        TrapReason::TransferTooLarge {
            limit: Limits::default().output_bytes
        }
    );
    assert_honest_call_works(&runtime);
}

#[test]
fn panic_becomes_a_typed_trap() {
    let runtime = runtime();
    let hostile = install(&runtime, &program(guests::PANIC), PluginKind::Segment);
    let error = hostile.evaluate(&[], &spend_batch(&[1.0])).unwrap_err();
    assert_eq!(error.trap_reason(), Some(&TrapReason::Panic));
    assert!(
        error.to_string().contains("panic@0.1.0"),
        "names the plugin: {error}"
    );
    assert_honest_call_works(&runtime);
}

#[test]
fn output_far_over_the_cap_is_refused() {
    let limits = Limits {
        output_bytes: 1 << 20,
        ..Limits::default()
    };
    // 16 MiB of scores and 8 MiB of tier names against a 1 MiB cap: stopped
    // while the host copies the result, before it allocates it.
    assert_eq!(
        attack(guests::OUTPUT_BOMB, limits),
        TrapReason::TransferTooLarge { limit: 1 << 20 }
    );
}

#[test]
fn ungranted_http_import_is_refused_at_install() {
    let runtime = runtime();
    match runtime.install(
        &program(guests::HTTP_IMPORT),
        request(PluginKind::Segment, Limits::default()),
    ) {
        Err(error @ InstallError::UngrantedImport { .. }) => {
            let message = error.to_string();
            assert!(message.contains("tessera:plugin/http@0.1.0"), "{message}");
            assert!(message.contains("only for connectors"), "{message}");
        }
        other => panic!("expected the http import to be refused, got {other:?}"),
    }
    assert_honest_call_works(&runtime);
}

#[test]
fn the_schema_import_is_refused_for_anything_but_a_segment() {
    let runtime = runtime();
    for kind in [PluginKind::Strategy, PluginKind::Connector] {
        match runtime.install(
            &program(guests::QUERY_PROBE),
            request(kind, Limits::default()),
        ) {
            Err(error @ InstallError::UngrantedImport { .. }) => {
                let message = error.to_string();
                assert!(message.contains("tessera:plan/schema@0.1.0"), "{message}");
                assert!(message.contains("only for segment plugins"), "{message}");
            }
            other => panic!("expected the schema import to be refused, got {other:?}"),
        }
    }
    let segment = install(&runtime, &program(guests::QUERY_PROBE), PluginKind::Segment);
    assert!(segment.info().plans);
    assert_honest_call_works(&runtime);
}

#[test]
fn state_import_without_a_quota_is_refused_at_install() {
    let runtime = runtime();
    let mut req = request(PluginKind::Strategy, Limits::default());
    req.grants = Grants::default();
    match runtime.install(plugins::EPSILON_GREEDY, req) {
        Err(error @ InstallError::UngrantedImport { .. }) => {
            let message = error.to_string();
            assert!(message.contains("tessera:plugin/state@0.1.0"), "{message}");
            assert!(message.contains("no state quota was granted"), "{message}");
        }
        other => panic!("expected the state import to be refused, got {other:?}"),
    }
    assert_honest_call_works(&runtime);
}

#[test]
fn files_environment_sockets_and_stdin_are_out_of_reach() {
    let runtime = runtime();
    let hostile = install(&runtime, &program(guests::WASI_PROBE), PluginKind::Segment);
    let probes = 10;
    let out = hostile
        .evaluate(&[], &batch(probes, Vec::new()))
        .expect("the probe runs");
    let escaped: Vec<_> = out
        .logs
        .iter()
        .filter(|l| l.message.contains("escaped"))
        .collect();
    assert!(escaped.is_empty(), "escaped: {escaped:?}");
    assert_eq!(out.value.member, vec![0; probes as usize]);
    assert_eq!(
        out.logs.len(),
        probes as usize,
        "one log line per probe: {:?}",
        out.logs
    );
    assert_honest_call_works(&runtime);
}

/// The host-flood guest as its own installation, with the state store it writes to.
fn install_host_flood(runtime: &Runtime, installation: &str) -> (Plugin, Arc<MemoryState>) {
    let state = Arc::new(MemoryState::new());
    let plugin = runtime
        .install(
            &program(guests::HOST_FLOOD),
            InstallRequest {
                state: state.clone(),
                installation: installation.into(),
                ..request(PluginKind::Segment, Limits::default())
            },
        )
        .expect("installs");
    (plugin, state)
}

fn flood(attack: &str) -> (TrapReason, Arc<MemoryState>) {
    let runtime = runtime();
    let (plugin, state) = install_host_flood(&runtime, "flood");
    let reason = trap_of(plugin.evaluate(
        &[param("attack", Value::Text(attack.into()))],
        &spend_batch(&[1.0]),
    ));
    assert_honest_call_works(&runtime);
    (reason, state)
}

#[test]
fn log_flood_hits_the_host_call_limit() {
    let (reason, _) = flood("log");
    assert_eq!(
        reason,
        TrapReason::HostCallLimit {
            limit: Limits::default().host_calls
        }
    );
}

#[test]
fn flood_of_large_log_lines_hits_the_copy_limit() {
    let (reason, _) = flood("log-bytes");
    assert_eq!(
        reason,
        TrapReason::GuestBytesLimit {
            limit: Limits::default().guest_bytes
        }
    );
}

#[test]
fn clock_flood_hits_the_host_call_limit() {
    let (reason, _) = flood("clock");
    assert_eq!(
        reason,
        TrapReason::HostCallLimit {
            limit: Limits::default().host_calls
        }
    );
}

#[test]
fn state_flood_is_trapped_and_leaves_no_partial_state() {
    let (reason, state) = flood("state");
    assert_eq!(
        reason,
        TrapReason::HostCallLimit {
            limit: Limits::default().host_calls
        }
    );
    let scope = StateScope {
        tenant: "acme".into(),
        plugin: "flood".into(),
    };
    assert_eq!(
        state.usage(&scope).unwrap(),
        0,
        "a trapped call commits nothing"
    );
}

#[test]
fn repeated_traps_quarantine_the_plugin_until_released() {
    let runtime = runtime();
    let honest = install(&runtime, plugins::THRESHOLD, PluginKind::Segment);
    let limits = Limits {
        fuel_base: 1_000_000,
        ..Limits::default()
    };
    let hostile = install_with(
        &runtime,
        &program(guests::LOOP_FOREVER),
        PluginKind::Segment,
        limits,
    );
    let one = spend_batch(&[1.0]);
    for _ in 0..3 {
        assert!(matches!(
            trap_of(hostile.evaluate(&[], &one)),
            TrapReason::OutOfFuel { .. }
        ));
    }
    assert!(hostile.is_quarantined());
    match hostile.evaluate(&[], &one) {
        Err(CallError::Quarantined { traps, last, .. }) => {
            assert_eq!(traps, 3);
            assert!(matches!(last, TrapReason::OutOfFuel { .. }));
        }
        other => panic!("expected quarantine, got {other:?}"),
    }
    assert!(!honest.is_quarantined(), "quarantine is per plugin");
    assert_honest_plugin_works(&honest);

    hostile.release();
    assert!(!hostile.is_quarantined());
    assert!(matches!(
        trap_of(hostile.evaluate(&[], &one)),
        TrapReason::OutOfFuel { .. }
    ));
    assert_eq!(hostile.total_traps(), 4);
}

#[test]
fn decisions_that_break_the_contract_are_refused() {
    let runtime = runtime();
    let hostile = install(
        &runtime,
        &program(guests::BAD_DECISIONS),
        PluginKind::Strategy,
    );
    let context = Context {
        channel: "web".into(),
        at: 1_780_000_000_000,
        attributes: Vec::new(),
    };
    for (flaw, expected) in [
        ("propensity", "propensity of 1.5"),
        ("action", "names action 7"),
    ] {
        let params = [param("flaw", Value::Text(flaw.into()))];
        match hostile.decide(&params, &batch(2, Vec::new()), &context) {
            Err(CallError::InvalidOutput { detail, .. }) => {
                assert!(detail.contains(expected), "{detail}")
            }
            other => panic!("expected an invalid output, got {other:?}"),
        }
    }
    assert_honest_call_works(&runtime);
}

#[test]
fn sleeping_is_trapped_instead_of_parking_a_host_thread() {
    assert_eq!(
        attack(guests::SLEEP_FOREVER, Limits::default()),
        TrapReason::Blocked
    );
}

#[test]
fn a_call_that_fails_after_writing_state_leaves_no_state() {
    let runtime = runtime();
    let (plugin, state) = install_host_flood(&runtime, "fails");
    let params = [param("attack", Value::Text("write-then-fail".into()))];
    match plugin.evaluate(&params, &spend_batch(&[1.0])) {
        Err(CallError::Plugin { error, .. }) => {
            assert_eq!(
                error.to_string(),
                "internal error: failing after a state write"
            )
        }
        other => panic!("expected the plugin's error, got {other:?}"),
    }
    let scope = StateScope {
        tenant: "acme".into(),
        plugin: "fails".into(),
    };
    assert_eq!(
        state.usage(&scope).unwrap(),
        0,
        "the failed call's write was not kept"
    );
    assert_eq!(state.get(&scope, "written").unwrap(), None);
}

/// A runtime with `slots` instance slots and the given wait for one.
fn runtime_with_slots(slots: u32, slot_wait: Duration) -> Runtime {
    Runtime::new(tessera_runtime::RuntimeConfig {
        concurrent_calls: slots,
        slot_wait,
        cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")),
        ..tessera_runtime::RuntimeConfig::default()
    })
    .expect("runtime starts")
}

#[test]
fn more_concurrent_calls_than_instance_slots_wait_their_turn() {
    // Without the gate, the pooling allocator fails every call beyond its
    // slots ("maximum concurrent limit … reached").
    let runtime = runtime_with_slots(2, Duration::from_secs(30));
    let honest = install(&runtime, plugins::THRESHOLD, PluginKind::Segment);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let honest = honest.clone();
            scope.spawn(move || {
                for _ in 0..5 {
                    assert_honest_plugin_works(&honest);
                }
            });
        }
    });
    assert_eq!(honest.total_traps(), 0);
}

#[test]
fn a_plugin_holding_every_slot_makes_other_calls_busy_until_it_is_stopped() {
    let runtime = runtime_with_slots(1, Duration::from_millis(50));
    let honest = install(&runtime, plugins::THRESHOLD, PluginKind::Segment);
    let limits = Limits {
        fuel_base: runtime.config().caps.fuel_base,
        time_base: Duration::from_secs(3),
        ..Limits::default()
    };
    let hostile = install_with(
        &runtime,
        &program(guests::LOOP_FOREVER),
        PluginKind::Segment,
        limits,
    );
    let busy = std::thread::scope(|scope| {
        let looping = scope.spawn(|| trap_of(hostile.evaluate(&[], &spend_batch(&[1.0]))));
        // Honest calls run until the hostile call holds the only slot; then
        // they are refused as busy, not failed in the allocator.
        let mut busy = None;
        let params = [param("threshold", Value::Number(500.0))];
        while !looping.is_finished() {
            match honest.evaluate(&params, &spend_batch(&[1.0])) {
                Err(error @ CallError::Busy { .. }) => {
                    busy = Some(error);
                    break;
                }
                Err(other) => panic!("expected success or busy, got {other:?}"),
                Ok(_) => {}
            }
        }
        let reason = looping.join().expect("the hostile call returns");
        assert!(
            matches!(
                reason,
                TrapReason::Timeout { .. } | TrapReason::OutOfFuel { .. }
            ),
            "{reason:?}"
        );
        busy
    });
    let busy = busy.expect("an honest call met the busy slot");
    assert!(
        busy.to_string()
            .contains("all 1 plugin instance slots stayed busy for 50 ms"),
        "{busy}"
    );
    // The slot is free again once the hostile call was stopped.
    assert_honest_plugin_works(&honest);
}
