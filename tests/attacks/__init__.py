"""The attack and fault suite: abuse, load and AWS failures, with figures."""
