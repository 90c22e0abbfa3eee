# The built-in demo data, generated (never committed) when demo.activate is true.


if demo_active():

    rule demo_data:
        output:
            DEMO_OUTPUTS,
        params:
            outdir=DEMO_DIR,
            seed=config["demo"].get("seed", 20260101),
        log:
            "logs/demo_data.log",
        benchmark:
            "logs/benchmarks/demo_data.tsv"
        script:
            "../scripts/demo_data.py"
