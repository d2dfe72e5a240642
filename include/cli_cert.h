/* cli_cert: `consulate cert --self-signed [--host NAME…] [--out FILE]`: a self-signed
 * certificate and its key in one PEM file, the form tls.certificate reads (libcrypto). */
#ifndef CONSULATE_CLI_CERT_H
#define CONSULATE_CLI_CERT_H

/* argv[0] is "cert". Returns the exit status (0, 1 failure, 2 usage). */
int cli_cert_main(int argc, char **argv);

#endif
