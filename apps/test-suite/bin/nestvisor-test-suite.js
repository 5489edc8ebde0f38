#!/usr/bin/env node
// The installed `nestvisor-test-suite` command. A committed launcher rather than dist/cli.js itself,
// so that a workspace install (before any build) can link the bin without a warning.
import "../dist/cli.js";
