"""A chaos run of the whole Tribune system (`make chaos-system`).

The system is the one `make run` assembles (bridge/run/run-local.sh writes
its keys and configs; this package starts the processes itself so that it
can kill, stop, partition and restart them one by one). While a steady load
runs through every path a real deployment has, faults are injected one at a
time from a seeded random plan, and invariants are checked while it runs
and at the end. The outcome is a report (JSON and Markdown) and, on
request, a section of RELIABILITY.md.

Modules, one concern each:

- common:     the run's clock, log, polling and HTTP helpers
- system:     the processes (brokers, tribune-auth, simulator, bridges)
- load:       the traffic and the probes that record what got through
- faults:     the fault plan and each kind of fault
- invariants: what must hold, checked continuously and at the end
- report:     JSON, Markdown and the RELIABILITY.md section
- run:        one run against one server, start to finish

Nothing here asserts a duration. Deadlines only stop a wait that would
otherwise hang; the one bound that is an invariant ("recovers within N s")
is generous, configurable and reported with the measured figures.
"""
