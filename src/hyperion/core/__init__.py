"""Pure decisions. Nothing here reads a clock, the store, the environment or the network."""

from hyperion.core.framework import PROFILES, Profile, ProfileError, build_profile, schedule

__all__ = ["PROFILES", "Profile", "ProfileError", "build_profile", "schedule"]
