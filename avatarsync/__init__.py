"""avatarsync: Terraform for AI avatar characters."""

__version__ = "0.1.0"
