# Execution: which rules stay on the submitting machine under a cluster executor.
# Include this file LAST in the Snakefile (after every rule file): it keeps only the names of
# rules that exist, so the list may name steps a configuration does not have (demo_data
# exists only with demo.activate, forced_archive only when a data set asks for it).
# Resources, groups and batch sizes are in the profiles (profiles/slurm/config.yaml): the
# command line cannot mark a rule local, so this is the one rule-side piece.

# Each SLURM job costs 5-12 s of start-up; these steps are cheaper than that, or (the
# archive query) need the network that compute nodes often lack.
DEFAULT_LOCALRULES = ["demo_data", "inventory", "forced_archive"]
LOCALRULES = sorted(
    set((config.get("execution") or {}).get("localrules", DEFAULT_LOCALRULES))
    & {rule.name for rule in workflow.rules}
)

workflow.localrules(*LOCALRULES)
