"""Sources → records → staged rows → waves → messages."""
