//! Message texts in en, es, fr and de, and `Accept-Language` negotiation.

use super::{ErrorCode, FieldIssue};

/// A language Janua answers in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Locale {
    #[default]
    En,
    Es,
    Fr,
    De,
}

impl Locale {
    /// The language tag sent in `Content-Language`.
    pub fn tag(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
            Self::Fr => "fr",
            Self::De => "de",
        }
    }

    /// Chooses the best supported language of an `Accept-Language` header (RFC 9110 §12.5.4):
    /// the highest q-value above 0 wins, the first of equals; a regional tag (`es-ES`) selects
    /// its language; an entry whose q-value is malformed is ignored; none → English.
    ///
    /// Parsed here rather than by the `accept-language` crate, whose sort panics on `q=NaN`
    /// (found by `fuzz_accept_language`: one header took down any request).
    pub fn negotiate(header: Option<&str>) -> Self {
        let mut best: Option<(u16, Self)> = None;
        for entry in header.unwrap_or_default().split(',') {
            let mut parts = entry.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let language = match tag.split('-').next().unwrap_or_default().to_ascii_lowercase().as_str() {
                "en" => Self::En,
                "es" => Self::Es,
                "fr" => Self::Fr,
                "de" => Self::De,
                _ => continue,
            };
            let mut weight = Some(1000);
            for param in parts {
                if let Some((name, value)) = param.split_once('=')
                    && name.trim().eq_ignore_ascii_case("q")
                {
                    weight = qvalue(value.trim());
                }
            }
            if let Some(w) = weight
                && w > 0
                && best.is_none_or(|(b, _)| w > b)
            {
                best = Some((w, language));
            }
        }
        best.map_or(Self::En, |(_, l)| l)
    }
}

/// An RFC 9110 §12.4.2 qvalue (`0`, `0.5`, `1.000`, at most three decimals) in thousandths.
fn qvalue(v: &str) -> Option<u16> {
    let (whole, fraction) = v.split_once('.').unwrap_or((v, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The text of an error code.
pub fn error_message(code: ErrorCode, l: Locale) -> &'static str {
    use ErrorCode::*;
    use Locale::*;
    match (code, l) {
        (BadRequest, En) => "The request is malformed.",
        (BadRequest, Es) => "La solicitud está mal formada.",
        (BadRequest, Fr) => "La requête est mal formée.",
        (BadRequest, De) => "Die Anfrage ist fehlerhaft.",
        (ValidationError, En) => "Some fields are invalid.",
        (ValidationError, Es) => "Algunos campos no son válidos.",
        (ValidationError, Fr) => "Certains champs sont invalides.",
        (ValidationError, De) => "Einige Felder sind ungültig.",
        (AuthenticationRequired, En) => "Authentication is required.",
        (AuthenticationRequired, Es) => "Se requiere autenticación.",
        (AuthenticationRequired, Fr) => "Une authentification est requise.",
        (AuthenticationRequired, De) => "Anmeldung erforderlich.",
        (InvalidCredentials, En) => "The email or password is incorrect.",
        (InvalidCredentials, Es) => "El correo o la contraseña son incorrectos.",
        (InvalidCredentials, Fr) => "L'e-mail ou le mot de passe est incorrect.",
        (InvalidCredentials, De) => "E-Mail oder Passwort ist falsch.",
        (InvalidToken, En) => "The token is invalid.",
        (InvalidToken, Es) => "El token no es válido.",
        (InvalidToken, Fr) => "Le jeton est invalide.",
        (InvalidToken, De) => "Das Token ist ungültig.",
        (TokenExpired, En) => "The token has expired.",
        (TokenExpired, Es) => "El token ha caducado.",
        (TokenExpired, Fr) => "Le jeton a expiré.",
        (TokenExpired, De) => "Das Token ist abgelaufen.",
        (SessionRevoked, En) => "The session has been revoked.",
        (SessionRevoked, Es) => "La sesión ha sido revocada.",
        (SessionRevoked, Fr) => "La session a été révoquée.",
        (SessionRevoked, De) => "Die Sitzung wurde widerrufen.",
        (InvalidMfaCode, En) => "The verification code is invalid or was already used.",
        (InvalidMfaCode, Es) => "El código de verificación no es válido o ya se utilizó.",
        (InvalidMfaCode, Fr) => "Le code de vérification est invalide ou a déjà été utilisé.",
        (InvalidMfaCode, De) => "Der Bestätigungscode ist ungültig oder wurde bereits verwendet.",
        (MfaNotEnabled, En) => "Two-factor authentication is not set up for this account.",
        (MfaNotEnabled, Es) => "La autenticación de dos factores no está configurada para esta cuenta.",
        (MfaNotEnabled, Fr) => "L'authentification à deux facteurs n'est pas configurée pour ce compte.",
        (MfaNotEnabled, De) => "Die Zwei-Faktor-Authentifizierung ist für dieses Konto nicht eingerichtet.",
        (MfaAlreadyEnabled, En) => "Two-factor authentication is already enabled.",
        (MfaAlreadyEnabled, Es) => "La autenticación de dos factores ya está activada.",
        (MfaAlreadyEnabled, Fr) => "L'authentification à deux facteurs est déjà activée.",
        (MfaAlreadyEnabled, De) => "Die Zwei-Faktor-Authentifizierung ist bereits aktiviert.",
        (PasskeyCeremonyInvalid, En) => {
            "The passkey ceremony is unknown, expired or already completed; start again."
        }
        (PasskeyCeremonyInvalid, Es) => {
            "La ceremonia de llave de acceso es desconocida, caducó o ya se completó; vuelva a empezar."
        }
        (PasskeyCeremonyInvalid, Fr) => {
            "La cérémonie de clé d'accès est inconnue, expirée ou déjà terminée ; recommencez."
        }
        (PasskeyCeremonyInvalid, De) => {
            "Der Passkey-Vorgang ist unbekannt, abgelaufen oder bereits abgeschlossen; bitte neu beginnen."
        }
        (PasskeyVerificationFailed, En) => "The passkey response could not be verified.",
        (PasskeyVerificationFailed, Es) => "No se pudo verificar la respuesta de la llave de acceso.",
        (PasskeyVerificationFailed, Fr) => "La réponse de la clé d'accès n'a pas pu être vérifiée.",
        (PasskeyVerificationFailed, De) => "Die Passkey-Antwort konnte nicht überprüft werden.",
        (PasskeyCloned, En) => {
            "The passkey's signature counter went backwards; the authenticator may have been cloned."
        }
        (PasskeyCloned, Es) => {
            "El contador de firmas de la llave de acceso retrocedió; el autenticador puede haber sido clonado."
        }
        (PasskeyCloned, Fr) => {
            "Le compteur de signatures de la clé d'accès a reculé ; l'authentificateur a peut-être été cloné."
        }
        (PasskeyCloned, De) => {
            "Der Signaturzähler des Passkeys ist zurückgegangen; der Authenticator wurde möglicherweise geklont."
        }
        (Forbidden, En) => "You are not allowed to do this.",
        (Forbidden, Es) => "No tiene permiso para hacer esto.",
        (Forbidden, Fr) => "Vous n'êtes pas autorisé à faire cela.",
        (Forbidden, De) => "Sie dürfen das nicht tun.",
        (InsufficientPermissions, En) => "Your role does not allow this.",
        (InsufficientPermissions, Es) => "Su rol no permite esto.",
        (InsufficientPermissions, Fr) => "Votre rôle ne le permet pas.",
        (InsufficientPermissions, De) => "Ihre Rolle erlaubt das nicht.",
        (NotFound, En) => "Not found.",
        (NotFound, Es) => "No encontrado.",
        (NotFound, Fr) => "Introuvable.",
        (NotFound, De) => "Nicht gefunden.",
        (MethodNotAllowed, En) => "This method is not allowed on this route.",
        (MethodNotAllowed, Es) => "Este método no está permitido en esta ruta.",
        (MethodNotAllowed, Fr) => "Cette méthode n'est pas autorisée sur cette route.",
        (MethodNotAllowed, De) => "Diese Methode ist für diese Route nicht erlaubt.",
        (Conflict, En) => "This conflicts with an existing resource.",
        (Conflict, Es) => "Esto entra en conflicto con un recurso existente.",
        (Conflict, Fr) => "Cela entre en conflit avec une ressource existante.",
        (Conflict, De) => "Dies steht im Konflikt mit einer vorhandenen Ressource.",
        (AlreadyMember, En) => "This person is already a member of the organization.",
        (AlreadyMember, Es) => "Esta persona ya es miembro de la organización.",
        (AlreadyMember, Fr) => "Cette personne est déjà membre de l'organisation.",
        (AlreadyMember, De) => "Diese Person ist bereits Mitglied der Organisation.",
        (InvitationInvalid, En) => {
            "This invitation is invalid: it may have expired, been used or been withdrawn. Ask for a new one."
        }
        (InvitationInvalid, Es) => {
            "Esta invitación no es válida: puede haber caducado, haberse usado o haberse retirado. Pida una nueva."
        }
        (InvitationInvalid, Fr) => {
            "Cette invitation n'est pas valable : elle a peut-être expiré, déjà servi ou été retirée. Demandez-en une nouvelle."
        }
        (InvitationInvalid, De) => {
            "Diese Einladung ist ungültig: Sie ist vielleicht abgelaufen, bereits verwendet oder zurückgezogen. Bitten Sie um eine neue."
        }
        (InvitationEmailMismatch, En) => {
            "This invitation is for another email address: sign in with the invited address's account."
        }
        (InvitationEmailMismatch, Es) => {
            "Esta invitación es para otra dirección de correo: inicie sesión con la cuenta de la dirección invitada."
        }
        (InvitationEmailMismatch, Fr) => {
            "Cette invitation est destinée à une autre adresse e-mail : connectez-vous avec le compte de l'adresse invitée."
        }
        (InvitationEmailMismatch, De) => {
            "Diese Einladung gilt einer anderen E-Mail-Adresse: Melden Sie sich mit dem Konto der eingeladenen Adresse an."
        }
        (InvitationSignInRequired, En) => {
            "An account with the invited address exists: sign in to it, then accept the invitation."
        }
        (InvitationSignInRequired, Es) => {
            "Ya existe una cuenta con la dirección invitada: inicie sesión en ella y luego acepte la invitación."
        }
        (InvitationSignInRequired, Fr) => {
            "Un compte existe pour l'adresse invitée : connectez-vous-y, puis acceptez l'invitation."
        }
        (InvitationSignInRequired, De) => {
            "Für die eingeladene Adresse gibt es ein Konto: Melden Sie sich dort an und nehmen Sie die Einladung dann an."
        }
        (AccountLocked, En) => "The account is temporarily locked after too many failed attempts.",
        (AccountLocked, Es) => "La cuenta está bloqueada temporalmente tras demasiados intentos fallidos.",
        (AccountLocked, Fr) => "Le compte est temporairement verrouillé après trop d'échecs.",
        (AccountLocked, De) => "Das Konto ist nach zu vielen Fehlversuchen vorübergehend gesperrt.",
        (AccountDisabled, En) => "The account is disabled.",
        (AccountDisabled, Es) => "La cuenta está desactivada.",
        (AccountDisabled, Fr) => "Le compte est désactivé.",
        (AccountDisabled, De) => "Das Konto ist deaktiviert.",
        (EmailNotVerified, En) => "Verify your email address first: follow the link in the mail we sent you.",
        (EmailNotVerified, Es) => {
            "Verifique primero su dirección de correo: siga el enlace del mensaje que le enviamos."
        }
        (EmailNotVerified, Fr) => {
            "Vérifiez d'abord votre adresse e-mail : suivez le lien du message que nous vous avons envoyé."
        }
        (EmailNotVerified, De) => {
            "Bestätigen Sie zuerst Ihre E-Mail-Adresse: folgen Sie dem Link in der Nachricht, die wir Ihnen gesendet haben."
        }
        (ReauthRequired, En) => "Confirm your password to continue: this change needs a recent sign-in.",
        (ReauthRequired, Es) => {
            "Confirme su contraseña para continuar: este cambio requiere un inicio de sesión reciente."
        }
        (ReauthRequired, Fr) => {
            "Confirmez votre mot de passe pour continuer : ce changement exige une connexion récente."
        }
        (ReauthRequired, De) => {
            "Bestätigen Sie Ihr Passwort, um fortzufahren: diese Änderung erfordert eine kürzliche Anmeldung."
        }
        (RateLimited, En) => "Too many requests; try again later.",
        (RateLimited, Es) => "Demasiadas solicitudes; inténtelo más tarde.",
        (RateLimited, Fr) => "Trop de requêtes ; réessayez plus tard.",
        (RateLimited, De) => "Zu viele Anfragen; bitte später erneut versuchen.",
        (PreconditionFailed, En) => "The resource has changed since the version you sent (If-Match).",
        (PreconditionFailed, Es) => "El recurso ha cambiado desde la versión que envió (If-Match).",
        (PreconditionFailed, Fr) => "La ressource a changé depuis la version envoyée (If-Match).",
        (PreconditionFailed, De) => "Die Ressource hat sich seit der gesendeten Version geändert (If-Match).",
        (PayloadTooLarge, En) => "The request body is too large.",
        (PayloadTooLarge, Es) => "El cuerpo de la solicitud es demasiado grande.",
        (PayloadTooLarge, Fr) => "Le corps de la requête est trop volumineux.",
        (PayloadTooLarge, De) => "Der Anfragekörper ist zu groß.",
        (UnsupportedMediaType, En) => {
            "The request body's media type is not accepted here (send application/json)."
        }
        (UnsupportedMediaType, Es) => {
            "El tipo de contenido del cuerpo no se acepta aquí (envíe application/json)."
        }
        (UnsupportedMediaType, Fr) => {
            "Le type de contenu du corps n'est pas accepté ici (envoyez application/json)."
        }
        (UnsupportedMediaType, De) => {
            "Der Medientyp des Anfragekörpers wird hier nicht angenommen (senden Sie application/json)."
        }
        (InvalidUtf8, En) => "The request body is not valid UTF-8.",
        (InvalidUtf8, Es) => "El cuerpo de la solicitud no es UTF-8 válido.",
        (InvalidUtf8, Fr) => "Le corps de la requête n'est pas de l'UTF-8 valide.",
        (InvalidUtf8, De) => "Der Anfragekörper ist kein gültiges UTF-8.",
        (RequestTimeout, En) => "The request body did not arrive in time.",
        (RequestTimeout, Es) => "El cuerpo de la solicitud no llegó a tiempo.",
        (RequestTimeout, Fr) => "Le corps de la requête n'est pas arrivé à temps.",
        (RequestTimeout, De) => "Der Anfragekörper ist nicht rechtzeitig angekommen.",
        (HeadersTooLarge, En) => "The request's headers are too large.",
        (HeadersTooLarge, Es) => "Las cabeceras de la solicitud son demasiado grandes.",
        (HeadersTooLarge, Fr) => "Les en-têtes de la requête sont trop volumineux.",
        (HeadersTooLarge, De) => "Die Header der Anfrage sind zu groß.",
        (SsoError, En) => "Single sign-on failed.",
        (SsoError, Es) => "El inicio de sesión único ha fallado.",
        (SsoError, Fr) => "L'authentification unique a échoué.",
        (SsoError, De) => "Die einmalige Anmeldung ist fehlgeschlagen.",
        (UpstreamError, En) => "An upstream service failed.",
        (UpstreamError, Es) => "Un servicio externo ha fallado.",
        (UpstreamError, Fr) => "Un service en amont a échoué.",
        (UpstreamError, De) => "Ein vorgelagerter Dienst ist fehlgeschlagen.",
        (InternalError, En) => "An internal error occurred.",
        (InternalError, Es) => "Se produjo un error interno.",
        (InternalError, Fr) => "Une erreur interne s'est produite.",
        (InternalError, De) => "Ein interner Fehler ist aufgetreten.",
        (ServiceUnavailable, En) => "The service is temporarily unavailable.",
        (ServiceUnavailable, Es) => "El servicio no está disponible temporalmente.",
        (ServiceUnavailable, Fr) => "Le service est temporairement indisponible.",
        (ServiceUnavailable, De) => "Der Dienst ist vorübergehend nicht verfügbar.",
    }
}

/// The text explaining why a field was refused.
pub fn field_message(issue: FieldIssue, l: Locale) -> String {
    use FieldIssue::*;
    use Locale::*;
    match (issue, l) {
        (Required, En) => "is required".into(),
        (Required, Es) => "es obligatorio".into(),
        (Required, Fr) => "est obligatoire".into(),
        (Required, De) => "ist erforderlich".into(),
        (InvalidEmail, En) => "is not a valid email address".into(),
        (InvalidEmail, Es) => "no es una dirección de correo válida".into(),
        (InvalidEmail, Fr) => "n'est pas une adresse e-mail valide".into(),
        (InvalidEmail, De) => "ist keine gültige E-Mail-Adresse".into(),
        (TooShort(n), En) => format!("must be at least {n} characters"),
        (TooShort(n), Es) => format!("debe tener al menos {n} caracteres"),
        (TooShort(n), Fr) => format!("doit contenir au moins {n} caractères"),
        (TooShort(n), De) => format!("muss mindestens {n} Zeichen lang sein"),
        (TooLong(n), En) => format!("must be at most {n} characters"),
        (TooLong(n), Es) => format!("debe tener como máximo {n} caracteres"),
        (TooLong(n), Fr) => format!("doit contenir au plus {n} caractères"),
        (TooLong(n), De) => format!("darf höchstens {n} Zeichen lang sein"),
        (CommonPassword, En) => "is too common".into(),
        (CommonPassword, Es) => "es demasiado común".into(),
        (CommonPassword, Fr) => "est trop courant".into(),
        (CommonPassword, De) => "ist zu verbreitet".into(),
        (PasswordContainsEmail, En) => "must not be your email address".into(),
        (PasswordContainsEmail, Es) => "no debe ser su dirección de correo".into(),
        (PasswordContainsEmail, Fr) => "ne doit pas être votre adresse e-mail".into(),
        (PasswordContainsEmail, De) => "darf nicht Ihre E-Mail-Adresse sein".into(),
        (InvalidFormat, En) => "has an invalid format".into(),
        (InvalidFormat, Es) => "tiene un formato no válido".into(),
        (InvalidFormat, Fr) => "a un format invalide".into(),
        (InvalidFormat, De) => "hat ein ungültiges Format".into(),
        (OutOfRange, En) => "is out of range".into(),
        (OutOfRange, Es) => "está fuera de rango".into(),
        (OutOfRange, Fr) => "est hors limites".into(),
        (OutOfRange, De) => "liegt außerhalb des zulässigen Bereichs".into(),
        (UrlNotAllowed, En) => "must be an https URL of a public host".into(),
        (UrlNotAllowed, Es) => "debe ser una URL https de un host público".into(),
        (UrlNotAllowed, Fr) => "doit être une URL https d'un hôte public".into(),
        (UrlNotAllowed, De) => "muss eine https-URL eines öffentlichen Hosts sein".into(),
        (UnknownEvent, En) => "names an unknown event type".into(),
        (UnknownEvent, Es) => "nombra un tipo de evento desconocido".into(),
        (UnknownEvent, Fr) => "désigne un type d'événement inconnu".into(),
        (UnknownEvent, De) => "nennt einen unbekannten Ereignistyp".into(),
    }
}

/// The envelope's `message` for a successful request.
pub fn success_message(l: Locale) -> &'static str {
    match l {
        Locale::En => "Operation completed successfully",
        Locale::Es => "Operación completada con éxito",
        Locale::Fr => "Opération réussie",
        Locale::De => "Vorgang erfolgreich abgeschlossen",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_with_q_values_and_regions() {
        assert_eq!(Locale::negotiate(Some("fr")), Locale::Fr);
        assert_eq!(Locale::negotiate(Some("es-ES,en;q=0.5")), Locale::Es);
        assert_eq!(Locale::negotiate(Some("it, de;q=0.3, fr;q=0.7")), Locale::Fr);
        assert_eq!(Locale::negotiate(Some("ja")), Locale::En);
        assert_eq!(Locale::negotiate(None), Locale::En);
        assert_eq!(Locale::negotiate(Some("fr;q=0, de;q=0.001")), Locale::De, "q=0 is not acceptable");
        assert_eq!(Locale::negotiate(Some("fr;q=2, de;q=abc, es;q=0.5")), Locale::Es, "malformed q ignored");
        assert_eq!(Locale::negotiate(Some("de ; Q=0.9 , fr")), Locale::Fr);
    }

    /// Found by `fuzz_accept_language`: the `accept-language` crate's sort panicked on NaN
    /// q-values ("comparison does not implement a total order"), so this header reset every
    /// request that carried it.
    #[test]
    fn nan_q_values_do_not_panic() {
        let header = ["aa;q=NaN"; 7].join(",")
            + ",aa;q=-inf,aa;q=1e9,aa;q=NaN,aa;q=inf,aa;q=inf,"
            + &["aa;q=NaN"; 9].join(",");
        assert_eq!(Locale::negotiate(Some(&header)), Locale::En);
        assert_eq!(Locale::negotiate(Some(&format!("{header},fr;q=0.1"))), Locale::Fr);
    }

    /// Fuzz: any header gives one of the four languages, never a panic; a well-formed header
    /// gives the supported language of highest q-value above 0 (the first of equals), else
    /// English.
    #[test]
    fn fuzz_accept_language() {
        use proptest::prelude::*;
        let tag = prop::sample::select(vec![
            "en",
            "es",
            "fr",
            "de",
            "EN-gb",
            "es-419",
            "fr-CA",
            "de-AT-1996",
            "ja",
            "it",
            "*",
            "x-klingon",
        ]);
        let q = prop_oneof![Just(None), (0u32..=1000).prop_map(Some)];
        let entries = prop::collection::vec((tag, q), 0..8);
        let arbitrary = prop_oneof![
            any::<String>(),
            "[a-zA-Z*;=,. 0-9q-]{0,60}",
            // q-values no parser should trust
            prop::collection::vec(
                (
                    "[a-z]{2}",
                    prop::sample::select(vec![
                        "NaN", "nan", "inf", "-inf", "-1", "1e9", "0x1", "", "=", "1;q=0.5"
                    ]),
                ),
                1..40,
            )
            .prop_map(|v| v
                .iter()
                .map(|(t, q)| format!("{t};q={q}"))
                .collect::<Vec<_>>()
                .join(",")),
        ];
        let strategy = (entries, arbitrary.clone(), arbitrary.prop_flat_map(crate::fuzz::mutated));
        crate::fuzz::run("Accept-Language", 2000, strategy, |(entries, raw, mutated)| {
            let _ = Locale::negotiate(Some(&raw));
            let _ = Locale::negotiate(Some(&mutated));
            let header = entries
                .iter()
                .map(|(t, q)| match q {
                    None => (*t).to_owned(),
                    Some(q) => format!("{t};q={}.{:03}", q / 1000, q % 1000),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let weight = |q: &Option<u32>| q.unwrap_or(1000);
            let supported = |t: &str| match t.split('-').next().unwrap().to_ascii_lowercase().as_str() {
                "en" => Some(Locale::En),
                "es" => Some(Locale::Es),
                "fr" => Some(Locale::Fr),
                "de" => Some(Locale::De),
                _ => None,
            };
            let mut best: Option<(u32, Locale)> = None;
            for (t, q) in &entries {
                if let Some(l) = supported(t)
                    && weight(q) > 0
                    && best.is_none_or(|(w, _)| weight(q) > w)
                {
                    best = Some((weight(q), l));
                }
            }
            let expected = best.map_or(Locale::En, |(_, l)| l);
            prop_assert_eq!(Locale::negotiate(Some(&header)), expected, "{}", header);
            Ok(())
        });
    }
}
