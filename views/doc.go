// Package views renders what bottleform has to show: plans, as Terraform-like
// text for people (colour only when asked, byte-stable for the same plan) and
// as a documented, versioned JSON format for machines (docs/plan-json.md);
// and HCL diagnostics, as text with source snippets or in the shape of
// `terraform validate -json`. Views only format: they never decide, never
// read the environment except in ColorEnabled, and never see secret values,
// because the plan holds only references to them.
package views
