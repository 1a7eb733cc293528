"""The local stack: moto server, provisioning, stream pump, mailbox (never imported by chalicelib)."""
