"""HTTP-triggered functions, one blueprint module per resource. Kept thin: parse, call the
library, shape the response."""
