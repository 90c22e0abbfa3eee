# Every input header read once; unreadable files get an error row and are left out.


checkpoint inventory:
    input:
        images=sorted({p for ds in DATASETS.values() for p in ds.images.values()}),
    output:
        table=report(
            "results/inventory.ecsv",
            caption="../report/inventory.rst",
            category="Inventory",
        ),
    params:
        # The lists resolved at parse time, so the inventory names exactly the images the
        # rules know (a file landing in the folder mid-run waits for the next run).
        datasets=canonical(
            {name: {"mode": ds.mode, "images": ds.images} for name, ds in DATASETS.items()}
        ),
    # Headers read in parallel processes (scaled down to the local cores there are): every
    # one-image step waits for the inventory. Batches do not (resources.smk): there one
    # process, so that the batches start on the other cores at once. (A lambda: the
    # batches are planned in field_common.smk and forced_common.smk, included later.)
    threads: lambda wildcards: 1 if FIELD_BATCHES or FORCED_BATCHES else 4
    priority: PRIORITY_INVENTORY
    log:
        "logs/inventory.log",
    benchmark:
        "logs/benchmarks/inventory.tsv"
    conda:
        "../../envs/aperflow.yaml"
    script:
        "../scripts/inventory.py"
