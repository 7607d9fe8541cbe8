//! One job's evaluation (`Plugin::evaluation`): one instance serves the
//! job's batches in turn, each call under budgets of its own; a failed call
//! leaves no instance behind; the evaluation holds a pool slot until dropped.

use std::time::Duration;

use tessera_runtime::api::types::Value;
use tessera_runtime::{
    CallError, Grants, InstallRequest, Limits, Plugin, PluginKind, Runtime, RuntimeConfig,
    TrapReason,
};
use tessera_tests::{
    batch, install, param, plugins, request, spend_batch, wat_segment, wat_segment_component,
};

use super::runtime;

/// A segment whose memory counts its calls. A batch of n rows gets n
/// memberships of 1 and, as every row's score, how many calls this
/// instance has served. A 2-row batch traps (a panic); a 4-row batch hits
/// the memory limit in an instance that served 3 calls or more (as a plugin
/// whose memory grows from call to call would); a 3-row batch gets a result
/// of the wrong length.
fn call_counter() -> String {
    wat_segment(
        "call-counter",
        1,
        "(global $calls (mut i32) (i32.const 0))",
        r#"    (local $n i32) (local $i i32)
    (if (i32.eq (local.get 2) (i32.const 2)) (then unreachable))
    (if (i32.and (i32.eq (local.get 2) (i32.const 4))
                 (i32.ge_u (global.get $calls) (i32.const 3)))
      (then (drop (memory.grow (i32.const 65535)))))
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (local.set $n
      (select (i32.const 1) (local.get 2) (i32.eq (local.get 2) (i32.const 3))))
    (block $done
      (loop $fill
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store8 (i32.add (i32.const 0x500) (local.get $i)) (i32.const 1))
        (f64.store (i32.add (i32.const 0x600) (i32.shl (local.get $i) (i32.const 3)))
          (f64.convert_i32_u (global.get $calls)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $fill)))
    ;; ok(memberships { member, scores, tiers: none })
    (i32.store8 (i32.const 0x100) (i32.const 0))
    (i32.store (i32.const 0x104) (i32.const 0x500)) (i32.store (i32.const 0x108) (local.get $n))
    (i32.store (i32.const 0x10c) (i32.const 0x600)) (i32.store (i32.const 0x110) (local.get $n))
    (i32.store8 (i32.const 0x114) (i32.const 0))
    i32.const 0x100"#,
    )
}

/// A segment installed without a state grant (an evaluation of a plugin
/// granted state never keeps its instance between calls).
fn stateless(runtime: &Runtime, bytes: &[u8], limits: Limits) -> Plugin {
    runtime
        .install(
            bytes,
            InstallRequest {
                grants: Grants::default(),
                ..request(PluginKind::Segment, limits)
            },
        )
        .expect("the plugin installs")
}

fn counter(runtime: &Runtime) -> Plugin {
    stateless(
        runtime,
        &wat_segment_component(&call_counter()),
        Limits::default(),
    )
}

/// The call count the counter reported for a 1-row batch.
fn calls_seen(
    result: Result<tessera_runtime::Called<tessera_runtime::api::segments::Memberships>, CallError>,
) -> f64 {
    let out = result.expect("the call succeeds").value;
    assert_eq!(out.member, vec![1]);
    out.scores[0]
}

#[test]
fn an_evaluation_serves_its_batches_from_one_instance_and_a_failed_call_leaves_none() {
    let runtime = runtime();
    let counter = counter(&runtime);
    let one = batch(1, Vec::new());
    let mut job = counter.evaluation(&[]).expect("an evaluation");
    assert_eq!(calls_seen(job.evaluate(&one)), 1.0);
    assert_eq!(calls_seen(job.evaluate(&one)), 2.0);
    assert_eq!(calls_seen(job.evaluate(&one)), 3.0);
    // A plain call, and another job, get instances of their own.
    assert_eq!(calls_seen(counter.evaluate(&[], &one)), 1.0);
    let mut other = counter.evaluation(&[]).expect("an evaluation");
    assert_eq!(calls_seen(other.evaluate(&one)), 1.0);
    assert_eq!(calls_seen(job.evaluate(&one)), 4.0);

    // A trap: the instance is gone, the next call starts from a fresh one.
    match job.evaluate(&batch(2, Vec::new())) {
        Err(CallError::Trap {
            reason: TrapReason::Panic,
            ..
        }) => {}
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(calls_seen(job.evaluate(&one)), 1.0);
    assert_eq!(calls_seen(job.evaluate(&one)), 2.0);

    // An output that breaks the rules: the same.
    match job.evaluate(&batch(3, Vec::new())) {
        Err(CallError::InvalidOutput { detail, .. }) => {
            assert_eq!(detail, "1 memberships for 3 rows");
        }
        other => panic!("expected an invalid output, got {other:?}"),
    }
    assert_eq!(calls_seen(job.evaluate(&one)), 1.0);
    assert_eq!(calls_seen(other.evaluate(&one)), 2.0);
}

#[test]
fn a_page_that_hits_the_memory_limit_in_a_used_instance_gets_one_more_try_in_a_fresh_one() {
    let runtime = runtime();
    let counter = counter(&runtime);
    let one = batch(1, Vec::new());
    let mut job = counter.evaluation(&[]).expect("an evaluation");
    for call in 1..=3 {
        assert_eq!(calls_seen(job.evaluate(&one)), f64::from(call));
    }
    // The instance that served three calls hits the memory limit; a fresh
    // one answers.
    let out = job
        .evaluate(&batch(4, Vec::new()))
        .expect("the retry answers");
    assert_eq!(out.value.member, vec![1; 4]);
    assert_eq!(out.value.scores, vec![1.0; 4]);
    // The retry was a call of its own: the job's next call starts over.
    assert_eq!(calls_seen(job.evaluate(&one)), 1.0);
    assert_eq!(counter.stats().traps, 1, "the trap counts");
    // A panic is the plugin's own, whatever the instance: not tried again.
    match job.evaluate(&batch(2, Vec::new())) {
        Err(CallError::Trap {
            reason: TrapReason::Panic,
            ..
        }) => {}
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(counter.stats().traps, 2);
}

#[test]
fn few_jobs_keep_instances_and_plugins_granted_state_never_do() {
    // Four slots: one may be kept by a job at a time.
    let runtime = Runtime::new(RuntimeConfig {
        concurrent_calls: 4,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let counter = counter(&runtime);
    let one = batch(1, Vec::new());
    let mut first = counter.evaluation(&[]).expect("an evaluation");
    let mut second = counter.evaluation(&[]).expect("an evaluation");
    assert_eq!(calls_seen(first.evaluate(&one)), 1.0);
    assert_eq!(calls_seen(second.evaluate(&one)), 1.0);
    assert_eq!(calls_seen(first.evaluate(&one)), 2.0);
    assert_eq!(calls_seen(second.evaluate(&one)), 1.0, "not kept");
    drop(first);
    assert_eq!(calls_seen(second.evaluate(&one)), 1.0);
    assert_eq!(calls_seen(second.evaluate(&one)), 2.0, "kept now");

    // Granted state: every call in a store of its own.
    let stateful = install(
        &runtime,
        &wat_segment_component(&call_counter()),
        PluginKind::Segment,
    );
    drop(second);
    let mut job = stateful.evaluation(&[]).expect("an evaluation");
    for _ in 0..3 {
        assert_eq!(calls_seen(job.evaluate(&one)), 1.0);
    }
}

#[test]
fn each_call_of_an_evaluation_has_a_fuel_and_time_budget_of_its_own() {
    let runtime = runtime();
    let params = [param("threshold", Value::Number(500.0))];
    let spend: Vec<f64> = (0..1_000).map(|i| f64::from(i) * 1.5).collect();
    let rows = spend_batch(&spend);
    let probe = install(&runtime, plugins::THRESHOLD, PluginKind::Segment);
    let fuel = probe.evaluate(&params, &rows).expect("a call").cost.fuel;
    // Each call may burn half as much again as one call needs, never two
    // calls' worth; a call may last 300 ms.
    let limits = Limits {
        fuel_base: fuel * 3 / 2,
        fuel_per_unit: 0,
        time_base: Duration::from_millis(300),
        time_per_unit: Duration::ZERO,
        ..Limits::default()
    };
    let plugin = stateless(&runtime, plugins::THRESHOLD, limits);
    let expected = spend.iter().filter(|s| **s >= 500.0).count();
    let mut job = plugin.evaluation(&params).expect("an evaluation");
    for call in 0..5 {
        let out = job
            .evaluate(&rows)
            .expect("each call within its own budget");
        assert!(out.cost.fuel <= fuel, "call {call}: fuel {}", out.cost.fuel);
        assert_eq!(out.cost.fuel_budget, fuel * 3 / 2);
        assert_eq!(
            out.value.member.iter().filter(|m| **m == 1).count(),
            expected
        );
        // Idle time between calls does not count against the next call.
        std::thread::sleep(Duration::from_millis(150));
    }
}

#[test]
fn an_evaluation_holds_its_pool_slot_until_it_is_dropped() {
    let runtime = Runtime::new(RuntimeConfig {
        concurrent_calls: 1,
        slot_wait: Duration::from_millis(50),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let plugin = stateless(&runtime, plugins::THRESHOLD, Limits::default());
    let params = [param("threshold", Value::Number(500.0))];
    let rows = spend_batch(&[100.0, 900.0]);
    let mut job = plugin.evaluation(&params).expect("an evaluation");
    job.evaluate(&rows).expect("the job's first call");
    match plugin.evaluate(&params, &rows) {
        Err(CallError::Busy { slots: 1, .. }) => {}
        other => panic!("expected every slot busy, got {other:?}"),
    }
    job.evaluate(&rows)
        .expect("the job's next call, in its instance");
    drop(job);
    let out = plugin.evaluate(&params, &rows).expect("the slot is free");
    assert_eq!(out.value.member, vec![0, 1]);
}
