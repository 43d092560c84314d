"""Pure business rules: no I/O, the clock is passed in, failures raise DomainError."""
