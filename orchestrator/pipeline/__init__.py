"""The run pipeline: what ``run``, ``sweep`` and ``capacity`` do, one stage per module.

    request, sweep_file  what to measure, validated at the edge (no Ray): RunRequest, SweepSpec
    capacity             the capacity search: its steps planned one at a time from the last
    jobs                 run_benchmarks / run_sweep / run_capacity: one session and its conclusion
    session              run_session: folder → connect → probe → plan → agents → per invocation
                         (in the order of schedule): measure; per trial: record, commit → close
                         → targets
      resume             the stored run a sweep continues: same spec, measured as it started
      provenance         which code a run measured: --label, --commit, the program's checkout;
                         for history, git's first-parent order of the commits runs measured
      planner            points → trials with CPU sets per node (pure)
      schedule           the order of the trials' invocations: interleaved, in windows
      agents             one agent per node, placed at once (one STRICT_SPREAD placement group)
        node_agent       the agent actor: each invocation's fresh workers on its node, locks,
                         prepare, rounds, rows, release
      clocks             every node's clock offset: once per run, in parallel, re-checked for drift
      trial              measure one invocation of a trial through its nodes' agents: start, lock,
                         clocks, service, prepare, rounds, finish (one call per node each)
        rounds           the synchronized rounds, in batches of one call per node, numbered on
                         across a trial's invocations
        margin           how far ahead a batch's first instant is chosen, learned from each batch
        waits            every wait on Ray, with its deadline and a sentence when it passes
      costs              what each trial cost the driver, by phase (wall, CPU, calls)
      record             a node's rows (built by its agent) → the trial's rows over its
                         invocations and tables to store
      runlog             the run row (true at every moment), nodes rows, each trial's commit
    interrupts           Ctrl-C and SIGTERM alike
    history              what ``history`` and ``export`` do: index the runs, build the series,
                         detect, confirm on raw rounds, acknowledge

Nothing here prints after the run; ``render`` does. Imports stay in this order: a stage
imports the stages below it, never one above.
"""
