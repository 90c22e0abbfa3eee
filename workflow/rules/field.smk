# field mode: rules are added by its issue.
