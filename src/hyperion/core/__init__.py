"""Pure decisions. Nothing here reads a clock, the store, the environment or the network."""

from hyperion.core.explain import Explanation, explain
from hyperion.core.framework import PROFILES, Profile, ProfileError, build_profile, queue_order, schedule

__all__ = ["PROFILES", "Explanation", "Profile", "ProfileError", "build_profile", "explain", "queue_order", "schedule"]
