"""`nst report`: the HTML report of a run (build) and its figures. Imports no command-line
module; reading runs is workflows.analysis."""
