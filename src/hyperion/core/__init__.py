"""Pure decisions. Nothing here reads a clock, the store, the environment or the network."""

from hyperion.core.cycle import Cycle, Preemption, schedule
from hyperion.core.explain import Explanation, explain
from hyperion.core.framework import OPTIONS, PROFILES, Profile, ProfileError, build_profile

__all__ = ["OPTIONS", "PROFILES", "Cycle", "Explanation", "Preemption", "Profile", "ProfileError", "build_profile",
           "explain", "schedule"]
