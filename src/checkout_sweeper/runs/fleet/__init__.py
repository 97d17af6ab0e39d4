"""Fleet sweeps: every connected account of a platform key (or the ones named), each swept as an
ordinary recorded sweep of its own (its own lease keyed on the connected account, its own
pacing, audit run and scope), under a parent run that sums them up."""
