package cli

// deploymentOnline returns the deployment commands that talk to nodes.
func deploymentOnline() []*command { return nil }
