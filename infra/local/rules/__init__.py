"""The local IoT rules engine: matches each publish, runs the rules SQL, performs the actions."""
