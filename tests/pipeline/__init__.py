"""The flows end to end: publication, reruns, faults, servers, reports, docs."""
