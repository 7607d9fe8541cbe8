//! The hostile cases that apply to JavaScript, against one componentize-js
//! guest (`tests/guests/js/hostile`) whose `attack` parameter picks the
//! misdeed: a JavaScript plugin is stopped by the same limits as a Rust one,
//! with the same typed errors, and the host then serves honest calls — the
//! same plugin's included (a new store per call).

use std::time::Duration;

use tessera_runtime::api::types::Value;
use tessera_runtime::{CallError, Limits, Plugin, PluginError, PluginKind, Runtime, TrapReason};
use tessera_tests::{
    assert_honest_call_works, install_with, param, program, spend_batch, test_programs,
};

use super::runtime;

fn hostile(runtime: &Runtime, limits: Limits) -> Plugin {
    let path = test_programs::JS_HOSTILE.unwrap_or_else(|why| {
        panic!("the hostile JavaScript guest could not be built with componentize-js: {why}")
    });
    install_with(runtime, &program(path), PluginKind::Segment, limits)
}

fn attack(plugin: &Plugin, what: &str) -> Result<(), CallError> {
    plugin
        .evaluate(
            &[param("attack", Value::Text(what.into()))],
            &spend_batch(&[1.0, 2.0, 3.0]),
        )
        .map(|_| ())
}

fn trap_of(result: Result<(), CallError>) -> TrapReason {
    match result {
        Err(CallError::Trap { reason, .. }) => reason,
        other => panic!("expected a trap, got {other:?}"),
    }
}

/// The host serves the next honest call: the Rust reference plugin, and the
/// hostile JavaScript plugin itself when it behaves.
fn assert_host_healthy(runtime: &Runtime, plugin: &Plugin) {
    assert_honest_call_works(runtime);
    let out = plugin
        .evaluate(
            &[param("attack", Value::Text("none".into()))],
            &spend_batch(&[1.0, 2.0]),
        )
        .expect("the same plugin serves an honest call after its trap");
    assert_eq!(out.value.member, vec![0, 0]);
}

#[test]
fn javascript_infinite_loop_runs_out_of_fuel_and_the_host_serves_the_next_call() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Limits::default());
    let budget = plugin.limits().fuel_for(3);
    assert_eq!(
        trap_of(attack(&plugin, "loop")),
        TrapReason::OutOfFuel { budget }
    );
    assert_host_healthy(&runtime, &plugin);
}

#[test]
fn javascript_infinite_loop_hits_the_time_limit_when_fuel_is_plentiful() {
    let runtime = runtime();
    let limits = Limits {
        fuel_base: runtime.config().caps.fuel_base,
        time_base: Duration::from_millis(200),
        ..Limits::default()
    };
    let plugin = hostile(&runtime, limits.clone());
    assert_eq!(
        trap_of(attack(&plugin, "loop")),
        TrapReason::Timeout {
            limit: limits.time_for(3)
        }
    );
    assert_host_healthy(&runtime, &plugin);
}

#[test]
fn javascript_memory_hoarding_is_stopped_at_the_memory_limit() {
    let runtime = runtime();
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let plugin = hostile(&runtime, limits);
    match trap_of(attack(&plugin, "memory")) {
        TrapReason::MemoryLimit { limit, requested } => {
            assert_eq!(limit, 32 << 20);
            assert!(requested > limit, "asked for {requested}");
        }
        other => panic!("expected the memory limit, got {other:?}"),
    }
    assert_host_healthy(&runtime, &plugin);
}

#[test]
fn javascript_runaway_recursion_is_contained() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Limits::default());
    // SpiderMonkey checks its own stack and throws "too much recursion",
    // which the SDK returns as the plugin's internal error.
    match attack(&plugin, "recursion") {
        Err(CallError::Plugin {
            error: PluginError::Internal(message),
            ..
        }) => assert!(message.contains("too much recursion"), "{message}"),
        other => panic!("expected an internal error, got {other:?}"),
    }
    assert_host_healthy(&runtime, &plugin);
}

#[test]
fn an_uncaught_javascript_exception_is_the_plugins_internal_error() {
    let runtime = runtime();
    let plugin = hostile(&runtime, Limits::default());
    match attack(&plugin, "throw") {
        Err(CallError::Plugin { error, .. }) => assert_eq!(
            error,
            PluginError::Internal("uncaught exception: TypeError: a bug in the plugin".into())
        ),
        other => panic!("expected the plugin's error, got {other:?}"),
    }
    assert_host_healthy(&runtime, &plugin);
}

#[test]
fn javascript_log_flood_hits_the_host_call_limit() {
    let runtime = runtime();
    // With the default fuel, a JavaScript flood runs out of fuel first (a
    // call into the host costs the engine more than 2,000 instructions):
    // with fuel and time to spare, the host-call limit stops it.
    let limits = Limits {
        fuel_base: runtime.config().caps.fuel_base,
        time_base: Duration::from_secs(30),
        ..Limits::default()
    };
    let plugin = hostile(&runtime, limits);
    assert_eq!(
        trap_of(attack(&plugin, "log")),
        TrapReason::HostCallLimit {
            limit: Limits::default().host_calls
        }
    );
    assert_host_healthy(&runtime, &plugin);
}

#[test]
fn javascript_state_write_past_the_quota_fails_with_the_hosts_unavailable_error() {
    let runtime = runtime();
    // The guest imports `tessera-sdk/state`; the test installation grants
    // a 1 MiB quota, and it writes 2 MiB.
    let plugin = hostile(&runtime, Limits::default());
    match attack(&plugin, "quota") {
        Err(CallError::Plugin {
            error: PluginError::Unavailable(message),
            ..
        }) => assert!(message.contains("quota"), "{message}"),
        other => panic!("expected the quota's unavailable error, got {other:?}"),
    }
    assert_host_healthy(&runtime, &plugin);
}
