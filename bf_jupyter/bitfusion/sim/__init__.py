"""``bitfusion-sim``: a stand-in for the Bitfusion client with the same syntax and a real pool (SQLite leases)."""
