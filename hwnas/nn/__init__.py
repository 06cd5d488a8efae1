"""Building blocks shared by the search spaces, and analytic model statistics."""
