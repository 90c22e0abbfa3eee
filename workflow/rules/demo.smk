# The built-in demo data, generated (never committed) when demo.activate is true.


if demo_active():

    rule demo_data:
        output:
            DEMO_OUTPUTS,
        params:
            outdir=lambda wildcards, output: os.path.commonpath(output),
            seed=config["demo"].get("seed", 20260101),
        log:
            "logs/demo_data.log",
        benchmark:
            "logs/benchmarks/demo_data.tsv"
        conda:
            "../../envs/aperflow.yaml"
        script:
            "../scripts/demo_data.py"
