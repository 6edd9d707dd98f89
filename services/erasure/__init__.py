"""`leadflow forget`: erase a person from the warehouse and suppress their identity values."""
