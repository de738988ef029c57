"""The dataset's tables as pyarrow schemas, with the version every file carries.

Schema history (``topobench.schema_version`` in every file's metadata; file names carry it
too, ``v<N>-<name>.parquet``, so each version is read with one glob):
    1 — first version: runs, nodes, trials, samples; scaling (added by sweeps, additive);
        resources and the trials columns stop_reason … flags (issue 6, additive).
        Files: run.parquet, nodes.parquet, trials.parquet, scaling.parquet, trial-<id>.parquet.
    2 — files named v2-*.parquet; a finished run's per-trial samples and resources are
        compacted into one v2-part.parquet per node. Statistics over rounds, not pooled
        samples: trials gains ci_level, ci_method, aggregate_median/_ci_low/_ci_high and
        setup_s; a new table workers holds each worker's own figures; higher_is_better is
        null for descriptive metrics; scaling gains CIs of speedup, efficiency, X1, λ and N*,
        amdahl_x1 and fit_scale (fits on log X; N* only when κ's CI excludes 0). Hosts:
        nodes.host_id, trials.hosts, scaling.hosts. Latency: a new table latency holds each
        trial's merged HdrHistograms; latency metrics' trial figures come from them
        (trials.requests). resources.since_ns: a cpu_percent row covers one sample. Clocks:
        samples.clock_offset_ns (start_ns/end_ns are on the driver's time base), nodes.clock_*.
        Runs: status running while the driver lives (host, pid), resumed_by. A new table
        capacity holds topobench capacity's answer per point. Later, additively (older files
        read NULL, ``UNION_BY_NAME``): capacity.non_monotone, non_monotone_per_s, probes_per_s
        and note (issue 23); nodes.compiler (issue 22): numba's compiler facts as JSON.
    3 — written append-only: a run's files are parts under new names (v3-<kind>-<token>.parquet),
        committed by the run's manifest (_manifests/run_id=<id>/, see store/manifest.py) and
        compacted when it ends. A file is read only when a manifest names it; runs of versions
        1 and 2 (no manifest) are read by their file names. Invocations (fresh sets of worker
        processes per trial): samples.invocation (0-based; a round's repetition number is unique
        in its trial); trials.invocations (measured) and invocations_planned, figures over
        invocations, sd_between_invocations/sd_between_rounds (variance components, relative),
        the measured costs invocation_cost_s/round_cost_s and the plan for --rel-ci
        (plan_invocations, plan_rounds, plan_cost_s). Runs carry what was measured: runs.label,
        runs.commit_source (how git_commit was found: the benchmarked program's checkout,
        --commit, CI) and runs.git_dirty. Older files read with invocation null: one
        invocation, their figures unchanged. Later, additively (``UNION_BY_NAME``): history
        (issue 21) adds the CPU's identity to nodes (cpu_family, cpu_model_number, cpu_stepping,
        microcode, arch), trials.workload_version (a hash of the workload class's source) and
        a new table acks (acknowledged changes): no run's, so no manifest; one file per
        acknowledgement, committed by being written whole (store/layout.py).
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 3

RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("started_at", pa.timestamp("us", tz="UTC")),
    ("finished_at", pa.timestamp("us", tz="UTC")),
    ("command", pa.string()),
    ("spec", pa.string()),  # the validated request as JSON
    ("status", pa.string()),  # running | complete | failed | interrupted (a running run's driver died)
    ("trials_total", pa.int32()),
    ("trials_failed", pa.int32()),
    ("topobench_version", pa.string()),
    ("ray_version", pa.string()),
    ("python_version", pa.string()),
    ("git_commit", pa.string()),  # the benchmarked code's commit (schema 3; before: the working directory's)
    # Added by schema 2.
    ("host", pa.string()),  # where the driver runs: its machine id (boot id) …
    ("pid", pa.int64()),  # … and process, so a reader can tell a live running run from a dead one
    ("resumed_by", pa.list_(pa.string())),  # the command lines that resumed this run, in order
    # Added by schema 3.
    ("label", pa.string()),  # --label: what the run measured, as its user names it (e.g. v2)
    ("commit_source", pa.string()),  # how git_commit was found: --commit | command cwd | current folder | GITHUB_SHA ...
    ("git_dirty", pa.bool_()),  # the checkout had uncommitted changes: git_commit does not name the code alone
])

NODES_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("node_id", pa.string()),
    ("hostname", pa.string()),
    ("ip", pa.string()),
    ("is_head", pa.bool_()),
    ("ray_cpus", pa.int32()),
    ("usable_cpus", pa.list_(pa.int32())),
    ("cpu_model", pa.string()),
    ("cpu_flags", pa.list_(pa.string())),
    ("kernel", pa.string()),
    ("memory_total_bytes", pa.int64()),
    ("governor", pa.string()),
    ("boost", pa.bool_()),
    ("smt_active", pa.bool_()),
    ("load_avg_1m", pa.float64()),
    ("topology_summary", pa.string()),
    ("topology", pa.string()),  # Topology.to_dict() as JSON
    ("amd_x3d_mode", pa.string()),
    ("preferred_core_rank", pa.string()),  # JSON {cpu: rank}
    ("governors", pa.string()),  # JSON {cpu: governor} of the CPUs the run used
    ("versions", pa.string()),  # JSON {python, numpy, ray, pyarrow, blas}
    ("cpu_count", pa.int32()),
    ("memory_available_bytes", pa.int64()),
    ("vm", pa.string()),
    ("container", pa.string()),
    ("cpu_quota_cpus", pa.float64()),
    # Added by schema 2.
    ("host_id", pa.string()),  # the machine: the kernel's boot id (shared by its containers), else hostname
    ("clock_offset_ns", pa.int64()),  # the node's clock minus the driver's (first trial on it; 0: same machine)
    ("clock_uncertainty_ns", pa.int64()),  # ± bound of that offset: half the best exchange's round trip
    ("compiler", pa.string()),  # JSON {numba, llvmlite, llvm, triple, cpu_name, cpu_features, opt_level}
    # Added in schema 3 by history (issue 21): which silicon it is, for a host fingerprint of stable fields only.
    ("cpu_family", pa.string()),  # /proc/cpuinfo "cpu family" (Arm: CPU implementer)
    ("cpu_model_number", pa.string()),  # "model" (Arm: CPU part)
    ("cpu_stepping", pa.string()),  # "stepping" (Arm: CPU revision)
    ("microcode", pa.string()),  # microcode revision: environment, not identity (an update is not a new host)
    ("arch", pa.string()),  # platform.machine(): x86_64, aarch64, ...
])

TRIALS_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("trial_id", pa.string()),
    ("workload", pa.string()),
    ("params", pa.string()),
    ("nodes", pa.int32()),
    ("node_ids", pa.list_(pa.string())),
    ("workers", pa.int32()),
    ("placement", pa.string()),
    ("threads_per_worker", pa.int32()),
    ("mode", pa.string()),
    ("metric", pa.string()),
    ("unit", pa.string()),
    ("higher_is_better", pa.bool_()),
    ("n", pa.int32()),
    ("mean", pa.float64()),
    ("median", pa.float64()),
    ("stdev", pa.float64()),
    ("mad", pa.float64()),
    ("cv", pa.float64()),
    ("min", pa.float64()),
    ("max", pa.float64()),
    ("p5", pa.float64()),
    ("p95", pa.float64()),
    ("p99", pa.float64()),
    ("ci_low", pa.float64()),
    ("ci_high", pa.float64()),
    ("outliers", pa.int32()),
    ("aggregate_throughput", pa.float64()),  # all workers' ops over their rounds' wall time; unit as `unit`
    ("overlap", pa.float64()),  # smallest share of a worker's measuring time while all workers ran
    ("status", pa.string()),  # ok | failed
    ("error", pa.string()),
    # Added by issue 6 (additive): stopping, resources and flags; trial-level ones repeat on every row.
    ("stop_reason", pa.string()),  # repetitions | stable (CI narrow enough) | max-time (--until-stable)
    ("measure_s", pa.float64()),  # seconds from the shared start to the last worker's last sample end
    ("setup_s", pa.float64()),  # slowest worker's workload setup, seconds (numba kernels compile there)
    ("pinned_cpu_percent", pa.float64()),  # mean utilization of the planned CPUs while measuring, 0-100
    ("idlest_pinned_cpu_percent", pa.float64()),  # lowest per-CPU mean among the planned CPUs
    ("busiest_other_cpu_percent", pa.float64()),  # highest per-CPU mean among CPUs outside the plan
    ("peak_rss_bytes", pa.int64()),  # largest peak RSS of any worker
    ("worker_peak_rss_bytes", pa.list_(pa.int64())),  # peak RSS of each worker, by rank
    ("flags", pa.list_(pa.string())),  # unstable (this metric's CV) | desynchronized | noisy | underused | ...
    ("target", pa.string()),  # outcome of the --target checks on this metric, e.g. "...>=20 pass"
    # Added by schema 2: statistics over rounds (the independent unit).
    ("ci_level", pa.float64()),  # coverage of [ci_low, ci_high] (0.95); null with no CI (fewer than 6 rounds)
    ("ci_method", pa.string()),  # round bootstrap | repeated CI (--until-stable, kept under stopping)
    ("aggregate_median", pa.float64()),  # median over rounds of the per-round aggregate throughput
    ("aggregate_ci_low", pa.float64()),  # its 95% CI over rounds
    ("aggregate_ci_high", pa.float64()),
    ("hosts", pa.int32()),  # machines the trial's nodes run on (nodes of one host share its CPUs)
    ("requests", pa.int64()),  # latency metrics: requests behind the figure (median = their merged percentile)
    # Added by schema 3: invocations (fresh worker processes) above rounds.
    ("invocations", pa.int32()),  # invocations measured; median = median of their figures (null: written before: 1)
    ("invocations_planned", pa.int32()),  # invocations asked for (more than measured: interrupted, flagged partial)
    ("sd_between_invocations", pa.float64()),  # variance components as relative sds (log scale); null: too few
    ("sd_between_rounds", pa.float64()),
    ("invocation_cost_s", pa.float64()),  # mean seconds per invocation besides its rounds (start, setup, calibration)
    ("round_cost_s", pa.float64()),  # mean seconds per measured round
    ("plan_invocations", pa.int32()),  # the cheapest invocations x rounds for a CI of ±rel_ci (primary metric)
    ("plan_rounds", pa.int32()),
    ("plan_cost_s", pa.float64()),  # its measuring cost at the costs above, seconds
    # Added in schema 3 by history (issue 21).
    ("workload_version", pa.string()),  # 12 hex digits of a hash of the workload class's source, as run
])

# One row per trial and latency distribution: every request of the trial in one HdrHistogram.
LATENCY_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("trial_id", pa.string()),
    ("workload", pa.string()),
    ("metric", pa.string()),  # the distribution, e.g. latency, latency_corrected, send_lag, gc_pause
    ("unit", pa.string()),  # unit of its derived figures (the histogram itself counts ns)
    ("requests", pa.int64()),
    ("rounds", pa.int32()),
    ("histogram", pa.binary()),  # HdrHistogram V2 compressed encoding, 1 ns .. 1 h, 3 significant digits
])

# One row per trial, metric and worker: each worker's own figures over its rounds.
WORKERS_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("trial_id", pa.string()),
    ("workload", pa.string()),
    ("metric", pa.string()),
    ("unit", pa.string()),
    ("worker_rank", pa.int32()),
    ("node_id", pa.string()),
    ("hostname", pa.string()),
    ("cpus", pa.list_(pa.int32())),
    ("n", pa.int32()),  # rounds
    ("mean", pa.float64()),
    ("median", pa.float64()),
    ("cv", pa.float64()),
    ("ci_low", pa.float64()),  # 95% bootstrap CI of the median over this worker's rounds; null below 6
    ("ci_high", pa.float64()),
])

SAMPLES_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("trial_id", pa.string()),
    ("workload", pa.string()),
    ("params", pa.string()),
    ("node_id", pa.string()),
    ("hostname", pa.string()),
    ("worker_rank", pa.int32()),
    ("cpus", pa.list_(pa.int32())),
    ("l3_domain", pa.int32()),
    ("numa_node", pa.int32()),
    ("repetition", pa.int32()),
    ("warmup", pa.bool_()),  # not measured: a warm-up (repetition < 0) or a round that missed its window (>= 0)
    ("iterations", pa.int64()),
    ("ops", pa.int64()),
    ("elapsed_ns", pa.int64()),
    ("start_ns", pa.int64()),
    ("end_ns", pa.int64()),
    ("metric", pa.string()),
    ("value", pa.float64()),
    ("unit", pa.string()),
    ("clock_offset_ns", pa.int64()),  # schema 2: the node's clock minus the driver's; raw stamps = start_ns + this
    ("invocation", pa.int32()),  # schema 3: which set of worker processes took it (0-based); null before: 0
])

# One row per sweep series and N; the fit columns repeat on every row of their series.
SCALING_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("workload", pa.string()),
    ("params", pa.string()),  # JSON
    ("dimension", pa.string()),  # workers (per node varied, nodes fixed) | nodes (workers per node fixed)
    ("series", pa.string()),  # the fixed dimensions, e.g. "nodes=1 placement=compact threads_per_worker=1"
    ("mode", pa.string()),  # weak | strong
    ("metric", pa.string()),
    ("unit", pa.string()),
    ("n", pa.int32()),  # total workers, or nodes
    ("samples", pa.int32()),  # per-repetition aggregate throughputs behind the median
    ("throughput_median", pa.float64()),
    ("throughput_ci_low", pa.float64()),
    ("throughput_ci_high", pa.float64()),
    ("speedup", pa.float64()),  # a scaled speedup (Gustafson) in weak mode
    ("efficiency", pa.float64()),
    ("karp_flatt", pa.float64()),  # strong mode only
    ("amdahl_serial_fraction", pa.float64()),
    ("amdahl_serial_fraction_ci_low", pa.float64()),
    ("amdahl_serial_fraction_ci_high", pa.float64()),
    ("amdahl_rmse", pa.float64()),
    ("amdahl_x1", pa.float64()),  # the fitted single-worker throughput X1, in the unit
    ("usl_lambda", pa.float64()),
    ("usl_sigma", pa.float64()),
    ("usl_sigma_ci_low", pa.float64()),
    ("usl_sigma_ci_high", pa.float64()),
    ("usl_kappa", pa.float64()),
    ("usl_kappa_ci_low", pa.float64()),
    ("usl_kappa_ci_high", pa.float64()),
    ("usl_peak_n", pa.float64()),
    ("usl_rmse", pa.float64()),
    ("fit_note", pa.string()),  # why a fit is missing ("not enough points ...")
    ("verdict", pa.string()),
    # Added by schema 2: intervals on every derived figure; fits on log X.
    ("speedup_ci_low", pa.float64()),
    ("speedup_ci_high", pa.float64()),
    ("efficiency_ci_low", pa.float64()),
    ("efficiency_ci_high", pa.float64()),
    ("amdahl_x1_ci_low", pa.float64()),
    ("amdahl_x1_ci_high", pa.float64()),
    ("usl_lambda_ci_low", pa.float64()),
    ("usl_lambda_ci_high", pa.float64()),
    ("usl_peak_n_ci_low", pa.float64()),  # only when κ's CI excludes 0 (else usl_peak_n is null too)
    ("usl_peak_n_ci_high", pa.float64()),
    ("fit_scale", pa.string()),  # log (fitted on log X: multiplicative noise) | linear
    ("hosts", pa.int32()),  # machines behind this point's nodes
])

# One row per capacity search point (topobench capacity): the highest rate that met the SLO.
CAPACITY_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("workload", pa.string()),
    ("params", pa.string()),  # JSON, without the searched rate
    ("dimension", pa.string()),  # workers | nodes: what n counts
    ("n", pa.int32()),
    ("slo", pa.string()),  # e.g. "p99<=5ms"
    ("capacity_per_s", pa.float64()),  # highest offered rate (all workers) whose steps met the SLO; null: none
    ("bracket_low_per_s", pa.float64()),  # the search's bracket: capacity lies between these
    ("bracket_high_per_s", pa.float64()),  # the lowest rate that failed (null: never failed)
    ("closed_loop_per_s", pa.float64()),  # the closed-loop throughput the search started from
    ("steps", pa.int32()),
    ("latency_at_capacity_ms", pa.float64()),  # the first SLO percentile at capacity, every request merged
    ("latency_ci_high_at_capacity_ms", pa.float64()),  # its upper 95% bound over rounds, judged against the SLO
    ("limited_by", pa.string()),  # why the next rate failed (backlog, SLO, generator)
    ("status", pa.string()),  # met | not met even at the lowest rate | not searched
    ("trial_ids", pa.list_(pa.string())),  # the steps, stored in trials like any other trial
    # Added by issue 23 (additive: older files read NULL): the search's check of its own monotonicity.
    ("non_monotone", pa.bool_()),  # a step failed below a passing one: pass/fail was not monotone in the rate
    ("non_monotone_per_s", pa.list_(pa.float64())),  # those failing rates (total/s), ascending
    ("probes_per_s", pa.list_(pa.float64())),  # rates offered above a doubtful answer before trusting it
    ("note", pa.string()),  # what to know before trusting the answer, and what to do
])

# One row per resource sample (long format); cpu_percent rows are node-wide (worker_rank null).
RESOURCES_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("trial_id", pa.string()),
    ("node_id", pa.string()),
    ("worker_rank", pa.int32()),  # null for node-wide rows (cpu_percent)
    ("t_ns", pa.int64()),  # wall clock, ns since the epoch, at the end of the sampled interval
    ("kind", pa.string()),  # cpu_percent (over one measured sample) | rss_bytes
    ("cpu", pa.int32()),  # the CPU of a cpu_percent row, else null
    ("value", pa.float64()),  # percent (0-100) or bytes, as kind says
    ("since_ns", pa.int64()),  # schema 2: start of the interval (a cpu_percent row covers one sample)
])

# One row per acknowledged change (topobench history ack): append-only, one file per row.
ACKS_SCHEMA = pa.schema([
    ("change_id", pa.string()),  # the change's id as history prints it (series and first-bad point)
    ("series_id", pa.string()),
    ("series", pa.string()),  # the series in words, as it was when acknowledged
    ("first_bad", pa.string()),  # the first point after the change: commit, label or run id
    ("reason", pa.string()),
    ("acked_at", pa.timestamp("us", tz="UTC")),
    ("acked_by", pa.string()),  # the user name of the process that acknowledged it
])

UNION_BY_NAME = frozenset({"capacity", "nodes", "trials"})
"""Tables that gained columns within the current version: the reader matches their files' columns by name
(a file written before the addition reads NULL there), not by the first file's schema."""

SCHEMAS = {"runs": RUNS_SCHEMA, "nodes": NODES_SCHEMA, "trials": TRIALS_SCHEMA, "workers": WORKERS_SCHEMA,
           "latency": LATENCY_SCHEMA, "samples": SAMPLES_SCHEMA, "scaling": SCALING_SCHEMA,
           "capacity": CAPACITY_SCHEMA, "resources": RESOURCES_SCHEMA, "acks": ACKS_SCHEMA}
