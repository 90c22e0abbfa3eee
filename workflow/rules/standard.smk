# standard mode: rules are added by its issue.
