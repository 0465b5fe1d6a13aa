package opensoul.select

# A broken override: pins a profile that is in neither the input nor its session.
user_pin := "anthropic:ghost" if input.agent.id == "main"
