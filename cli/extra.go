package cli

import "github.com/peterbourgon/ff/v3/ffcli"

// extraCmds lists the commands that live in their own files and are
// owned by the parts they drive (policy, providers, gateway, sessions).
// Add one line per command.
func (a *app) extraCmds() []*ffcli.Command {
	return []*ffcli.Command{
		a.policyCmd(),
		a.providersCmd(),
		a.gatewayCmd(),
		a.sessionsCmd(),
		a.monitorCmd(),
		a.usageCmd(),
	}
}
