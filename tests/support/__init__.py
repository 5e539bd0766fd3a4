"""Helpers shared by the integration and lab tiers: running Ansible, checking prerequisites, cleaning up."""
