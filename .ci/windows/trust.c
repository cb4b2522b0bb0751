/* trust.exe add|remove CERT.der: puts a CA certificate into the machine's ROOT store, or
 * takes it out, as group policy or a TLS-inspecting proxy's installer does on a company
 * machine, so the Windows tests can prove that the tool trusts the store and not only
 * SSL_CERT_FILE. It writes to the wine prefix's registry under wine; on a real Windows
 * machine it needs an administrator and changes what the whole machine trusts, so it is
 * built for the tests only. Prints "added" or "removed". */
#include <windows.h>
#include <wincrypt.h>
#include <stdio.h>

static BYTE der[65536];

int wmain(int argc, wchar_t **argv) {
    if (argc != 3 || (wcscmp(argv[1], L"add") != 0 && wcscmp(argv[1], L"remove") != 0)) {
        fputs("usage: trust.exe add|remove CERT.der\n", stderr);
        return 2;
    }
    FILE *in = _wfopen(argv[2], L"rb");
    if (!in) {
        fputs("trust.exe: cannot open the certificate\n", stderr);
        return 1;
    }
    size_t len = fread(der, 1, sizeof der, in);
    fclose(in);
    HCERTSTORE store = CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0,
                                     CERT_SYSTEM_STORE_LOCAL_MACHINE, L"ROOT");
    if (!store) {
        fprintf(stderr, "trust.exe: cannot open the ROOT store (error %lu)\n", GetLastError());
        return 1;
    }
    PCCERT_CONTEXT cert = CertCreateCertificateContext(X509_ASN_ENCODING, der, (DWORD)len);
    if (!cert) {
        fprintf(stderr, "trust.exe: not a DER certificate (error %lu)\n", GetLastError());
        return 1;
    }
    if (wcscmp(argv[1], L"add") == 0) {
        if (!CertAddCertificateContextToStore(store, cert, CERT_STORE_ADD_REPLACE_EXISTING, NULL)) {
            fprintf(stderr, "trust.exe: cannot add (error %lu)\n", GetLastError());
            return 1;
        }
        puts("added");
    } else {
        PCCERT_CONTEXT found = CertFindCertificateInStore(store, X509_ASN_ENCODING, 0,
                                                          CERT_FIND_EXISTING, cert, NULL);
        if (found && !CertDeleteCertificateFromStore(found)) {
            fprintf(stderr, "trust.exe: cannot remove (error %lu)\n", GetLastError());
            return 1;
        }
        puts("removed");
    }
    CertFreeCertificateContext(cert);
    CertCloseStore(store, 0);
    return 0;
}
