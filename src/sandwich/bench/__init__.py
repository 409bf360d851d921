"""`sandwich bench`: load, end-to-end timing, resources, faults and floors, measured and reported.

    load.py      the load generator: customers set up first, then open-loop (a target rate, latency
                 counted from the scheduled send time) or closed-loop (N virtual customers)
    observe.py   what the load alone does not tell: create -> paid and -> the letter, event lag,
                 CPU seconds and peak memory per process, the outcome of every order after a phase
    floors.py    the same database work with no network, and one bare HTTP hop between processes
    faults.py    the fault scenarios of `--compare` and the checks after recovery
    report.py    statistics, targets and their verdicts, the table, JSON, Markdown and plots
    figures.py   which phase a quoted figure comes from, read one way for the targets and the tables
    brokers.py   the broker (--broker, --brokers), hybrid on each broker side by side, the broker down
    runner.py    phases put together: a platform (self-started or given), customers, load, checks
    compare.py   `--compare`: every flow on one broker, with hybrid's broker phases on each further one

Only the public API of the gateway is used to drive and check the platform; `Platform` (the same
supervisor `sandwich up` runs) is used to start it and to inject the faults.
"""
