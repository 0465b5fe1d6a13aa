package opensoul.select

# A broken override: gives a reason for a profile that does not exist.
reasons["ghost:1"] := "boo"
