"""Pure domain logic: customer state, alert classification and context. No Faust here."""
