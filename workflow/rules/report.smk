# The HTML report: `snakemake --report report.html` after a run. Plots and main tables of
# each stage are marked with report() in that stage's rules, with captions in
# workflow/report/; this file gives the report its front page.


report: "../report/workflow.rst"
