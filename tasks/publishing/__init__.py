"""Publishing: score every user, apply the shop's rules, tiers and reasons, write a version
and switch `latest`."""
