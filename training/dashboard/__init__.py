"""Static feature dashboards: which SAE features fire on what, as pages you can look at and listen to."""

from training.dashboard.site import DashboardConfig, build_dashboard, check_site_out

__all__ = ["DashboardConfig", "build_dashboard", "check_site_out"]
