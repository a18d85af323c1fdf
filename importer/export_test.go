package importer

// ReservedEnv is exported for TestReservedEnvRefused.
var ReservedEnv = reservedEnv
