"""The relay's own error codes: one stable code, one HTTP status and one message each.

Business answers from an AMC are never relay errors; these are what the relay says when it
cannot (or must not) deliver an exchange. The table is rendered into docs/errors.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from piano.specs import SpecEnum
from roc.reasons import french


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    code: str
    http_status: int
    #: SOAP fault role: "Client" (the sender must change its request) or "Server".
    fault_role: str
    #: What the fault says, in French (the establishment reads it).
    message: str
    #: Whether the sender may send the same exchange again later unchanged.
    retryable: bool
    #: What the establishment should do, in French ("que faire", docs/errors.md).
    action: str = ""


class RpnError(SpecEnum):
    """Every fault the relay can answer with. Codes are stable: clients may match on them.

    Messages and actions are what an establishment reads, hence French; a fault adds the
    facts of the exchange (FINESS read and named, AMC, limit, next attempt) to the message.
    """

    ROUTING_UNREADABLE = ErrorSpec(
        "RPN-400-ROUTAGE",
        400,
        "Client",
        "Le bloc de routage de l'en-tête SOAP est absent, incomplet ou invalide.",
        False,
        "Corriger le champ du bloc Routage que le message d'erreur nomme, avec la règle "
        "enfreinte ; le message ne doit pas être renvoyé tel quel.",
    )
    XML_FORBIDDEN = ErrorSpec(
        "RPN-400-XML",
        400,
        "Client",
        "Le message n'est pas un XML bien formé, ou il utilise une DTD ou des entités, qui sont "
        "refusées.",
        False,
        "Signaler à l'éditeur du logiciel : le message doit être un XML UTF-8 bien formé, sans "
        "DTD ni entité.",
    )
    ROUTING_CONTRADICTORY = ErrorSpec(
        "RPN-400-INCOHERENT",
        400,
        "Client",
        "L'en-tête SOAPAction et le bloc de routage désignent des services différents.",
        False,
        "Aligner l'en-tête SOAPAction sur Routage/Service (paramétrage du logiciel).",
    )
    AMC_UNKNOWN = ErrorSpec(
        "RPN-400-AMC-INCONNUE",
        400,
        "Client",
        "Aucune AMC de l'annuaire ne correspond à ces identifiants de routage.",
        False,
        "Vérifier le numéro d'AMC, le type de convention et le critère secondaire relevés sur "
        "l'attestation de tiers payant du patient.",
    )
    SERVICE_NOT_OFFERED = ErrorSpec(
        "RPN-400-SERVICE-NON-OFFERT",
        400,
        "Client",
        "L'AMC ne propose pas ce service, ou pas dans cette version de ROC.",
        False,
        "Vérifier le service et la version ROC demandés ; cette AMC ne traite pas ce service "
        "par ROC.",
    )
    DRE_NOT_RELAYED = ErrorSpec(
        "RPN-400-DRE",
        400,
        "Client",
        "Les factures DRE-ES ne passent pas par le RPN : les envoyer par le canal de facturation.",
        False,
        "Envoyer la facture directement à l'AMC, par le canal de facturation prévu.",
    )
    CONTENT_TYPE = ErrorSpec(
        "RPN-415-TYPE",
        415,
        "Client",
        "La requête doit être SOAP : Content-Type text/xml ou application/soap+xml.",
        False,
        "Corriger l'en-tête Content-Type envoyé par le logiciel.",
    )
    SENDER_NOT_REGISTERED = ErrorSpec(
        "RPN-403-NON-INSCRIT",
        403,
        "Client",
        "L'établissement du certificat client n'est pas inscrit auprès du relais.",
        False,
        "Vérifier que le logiciel présente le certificat de l'établissement (le FINESS lu est "
        "indiqué) ; pour inscrire un site ou une entité juridique, s'adresser à l'ANS "
        "(raccordement ROC).",
    )
    SENDER_MISMATCH = ErrorSpec(
        "RPN-403-EMETTEUR",
        403,
        "Client",
        "L'émetteur nommé dans le message n'est pas l'établissement du certificat client.",
        False,
        "Le message doit nommer son site (FinessGeographique) et l'entité juridique de ce site "
        "(FinessJuridique), tels qu'inscrits, et le certificat doit être celui de ce site ou "
        "de cette entité : vérifier le paramétrage FINESS du logiciel.",
    )
    IN_QUALIFICATION = ErrorSpec(
        "RPN-403-QUALIFICATION",
        403,
        "Client",
        "L'établissement est en qualification : il n'atteint que les AMC fictives de Mutuelle "
        "ANS tant que l'ANS ne l'a pas passé en production sous surveillance.",
        False,
        "Jouer la suite de qualification sur Mutuelle ANS (page de l'établissement, "
        "docs/raccordement.md) ; une fois chaque étape réussie, demander à l'ANS le passage en "
        "production sous surveillance.",
    )
    SUSPENDED = ErrorSpec(
        "RPN-403-SUSPENDU",
        403,
        "Client",
        "L'établissement est suspendu par l'ANS : il n'atteint que les AMC fictives de Mutuelle "
        "ANS.",
        False,
        "Corriger ce que l'ANS a signalé, rejouer la suite de qualification si elle le demande, "
        "puis lui demander la reprise (docs/raccordement.md).",
    )
    NOT_FOUND = ErrorSpec(
        "RPN-404-CHEMIN",
        404,
        "Client",
        "Aucun service ROC n'est publié à ce chemin.",
        False,
        "Utiliser l'adresse du RPN donnée par la documentation de raccordement (chemin /roc).",
    )
    METHOD_NOT_ALLOWED = ErrorSpec(
        "RPN-405-METHODE",
        405,
        "Client",
        "Les services ROC n'acceptent que la méthode POST.",
        False,
        "Envoyer les messages ROC en POST.",
    )
    HTTP_MALFORMED = ErrorSpec(
        "RPN-400-HTTP",
        400,
        "Client",
        "La requête HTTP est mal formée (ligne de requête, champ d'en-tête, longueur ou codage "
        "de transfert) ; la connexion est fermée.",
        False,
        "Signaler à l'éditeur du logiciel (ou du proxy sortant) : la requête ne respecte pas "
        "HTTP/1.1.",
    )
    HEADERS_TOO_LARGE = ErrorSpec(
        "RPN-431-ENTETES",
        431,
        "Client",
        "Les champs d'en-tête HTTP sont trop grands ou trop nombreux ; la connexion est fermée.",
        False,
        "Réduire les en-têtes HTTP : 16 Kio et 100 champs au plus.",
    )
    BODY_TOO_LARGE = ErrorSpec(
        "RPN-413-TAILLE",
        413,
        "Client",
        "Le message dépasse la taille acceptée par le relais.",
        False,
        "Réduire le message sous la limite indiquée (pièces jointes, lignes en trop).",
    )
    REQUEST_TIMEOUT = ErrorSpec(
        "RPN-408-LECTURE",
        408,
        "Client",
        "La requête n'a pas été reçue à temps ; la connexion est fermée.",
        True,
        "Vérifier la liaison réseau de l'établissement, puis renvoyer l'échange.",
    )
    RATE_LIMITED = ErrorSpec(
        "RPN-429-DEBIT",
        429,
        "Client",
        "Trop d'échanges simultanés pour cet établissement ; réessayer plus tard.",
        True,
        "Attendre le délai Retry-After, et limiter les envois en parallèle du logiciel.",
    )
    INTERNAL = ErrorSpec(
        "RPN-500-INTERNE",
        500,
        "Server",
        "Le relais a échoué de façon inattendue ; l'échange a pu ne pas être transmis.",
        False,
        "Ne pas renvoyer sans vérifier auprès de l'AMC ; signaler l'identifiant d'échange à l'ANS.",
    )
    AMC_BAD_ANSWER = ErrorSpec(
        "RPN-502-AMC-REPONSE",
        502,
        "Server",
        "La réponse de l'AMC est coupée ou illisible ; l'échange a pu parvenir à l'AMC.",
        False,
        "Ne pas renvoyer tel quel : vérifier d'abord auprès de l'AMC ce qu'elle a reçu (une "
        "CLC a pu créer un engagement : l'annuler par une DEL si besoin).",
    )
    AMC_TLS = ErrorSpec(
        "RPN-502-AMC-TLS",
        502,
        "Server",
        "La connexion sécurisée avec l'AMC a échoué (certificat non reconnu, mauvais nom ou "
        "expiré).",
        True,
        "Rien à corriger côté établissement : renvoyer plus tard (l'échange n'a pas été "
        "transmis) ; l'ANS suit l'incident.",
    )
    AMC_UNAVAILABLE = ErrorSpec(
        "RPN-503-AMC-INDISPONIBLE",
        503,
        "Server",
        "L'AMC est injoignable pour le moment ; l'échange n'a pas été transmis.",
        True,
        "Renvoyer l'échange après le délai Retry-After.",
    )
    AMC_CIRCUIT_OPEN = ErrorSpec(
        "RPN-503-AMC-SUSPENDUE",
        503,
        "Server",
        "L'AMC est en échec et le trafic vers elle est suspendu ; l'échange n'a pas été transmis.",
        True,
        "Renvoyer l'échange après le délai Retry-After (la prochaine tentative est indiquée).",
    )
    OVERLOADED = ErrorSpec(
        "RPN-503-SURCHARGE",
        503,
        "Server",
        "Trop d'échanges attendent cette AMC ; l'échange n'a pas été transmis.",
        True,
        "Renvoyer l'échange après le délai Retry-After.",
    )
    ANNUAIRE_UNAVAILABLE = ErrorSpec(
        "RPN-503-ANNUAIRE",
        503,
        "Server",
        "L'annuaire des AMC est injoignable et cette AMC n'est pas dans le cache du relais.",
        True,
        "Renvoyer l'échange après le délai Retry-After.",
    )
    SHUTTING_DOWN = ErrorSpec(
        "RPN-503-ARRET",
        503,
        "Server",
        "Le relais s'arrête ; l'échange n'a pas été transmis.",
        True,
        "Renvoyer l'échange : un autre relais le prend en charge.",
    )
    CUT_BY_SHUTDOWN = ErrorSpec(
        "RPN-503-ARRET-COUPE",
        503,
        "Server",
        "Le relais s'est arrêté avant la réponse de l'AMC ; l'échange a pu parvenir à l'AMC.",
        False,
        "Ne pas renvoyer tel quel : vérifier d'abord auprès de l'AMC ce qu'elle a reçu (une "
        "CLC a pu créer un engagement : l'annuler par une DEL si besoin).",
    )
    AMC_TIMEOUT = ErrorSpec(
        "RPN-504-AMC-DELAI",
        504,
        "Server",
        "L'AMC n'a pas répondu à temps ; l'échange a pu parvenir à l'AMC.",
        False,
        "Ne pas renvoyer tel quel : vérifier d'abord auprès de l'AMC ce qu'elle a reçu (une "
        "CLC a pu créer un engagement : l'annuler par une DEL si besoin).",
    )

    @property
    def spec(self) -> ErrorSpec:
        return self.value


class RpnFailure(Exception):
    """An exchange the relay refuses or cannot deliver.

    *detail* is the English reason (logs); *detail_fr* the French one shown in the fault,
    taken from *detail* when it is a ``roc.reasons.Reason``. Neither may contain personal
    data: name fields, FINESS, AMC numbers and limits, never a value the message carried.
    *exchange_id* is the message's exchange id when it could be read although the message
    was refused; *retry_after* the seconds a retryable fault tells the client to wait.
    """

    def __init__(
        self,
        error: RpnError,
        detail: str = "",
        detail_fr: str | None = None,
        *,
        exchange_id: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{error.code}: {detail or error.spec.code}")
        self.error = error
        self.detail = detail
        self.detail_fr = french(detail) if detail_fr is None else detail_fr
        self.exchange_id = exchange_id
        self.retry_after = retry_after
