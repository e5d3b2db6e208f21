"""Operator extra links to the Adobe Experience Platform UI."""
