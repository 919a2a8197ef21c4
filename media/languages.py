"""The languages the PBX speaks: the texts of its system prompts, one set per
language, every set with the same names.

English is the reference and the fallback (:class:`media.prompts.PromptLibrary`
plays the English prompt when a language lacks one).  Texts are what a Nordic
or German PBX says; digits in them ("press 7") are read by espeak-ng in the
language.  Sentences that carry a name, a number or a time are cut into
pieces that go around it (``media.say`` puts them together): "<Alice
Andersson> is in a meeting until eleven o'clock", "The person at extension
<one oh oh one> is not available."

Numbers are prompts too, never text-to-speech during a call: ``number_1`` …
``number_59`` (counts of messages use 1–20; clock times use up to 59),
``digit_0`` … ``digit_9`` (a number read digit by digit) and ``hour_1`` (the
hour one in a clock time, which some languages say differently from the count
"one": German "ein Uhr", Danish "klokken et").
"""

from __future__ import annotations

LANGUAGES = ("en", "sv", "da", "nb", "fi", "de")  # ISO 639-1; each is an espeak-ng voice
FALLBACK = "en"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _numbers(one_to_twenty: str, tens: str, compose: str, units: str = "") -> dict[str, str]:
    """``number_1`` … ``number_59`` from the words for 1–20, the tens 20–50 and how
    a language joins a ten and a one (``{ten}``, ``{one}``): "twenty-one",
    "tjugoett", "enogtyve", "einundzwanzig".  ``units`` are the ones as they go
    into a compound when that differs from the count (German "ein", not "eine")."""
    words = one_to_twenty.split()
    ones = units.split() or words[:9]
    assert len(words) == 20 and len(ones) == 9
    texts = {f"number_{n}": word for n, word in enumerate(words, 1)}
    for t, ten in enumerate(tens.split(), 2):
        for u in range(10):
            n = 10 * t + u
            if 20 < n < 60:
                texts[f"number_{n}"] = ten if u == 0 else compose.format(ten=ten, one=ones[u - 1])
    return texts


def _named(prefix: str, words: str, start: int = 0, sep: str = "|") -> dict[str, str]:
    return {f"{prefix}{i}": word.strip() for i, word in enumerate(words.split(sep), start)}


def _weekdays(words: str) -> dict[str, str]:
    """``on_monday`` … ``on_sunday``: a day as said after a time ("… on Monday")."""
    parts = [w.strip() for w in words.split("|")]
    assert len(parts) == 7
    return {f"on_{day}": word for day, word in zip(WEEKDAYS, parts)}


TEXTS: dict[str, dict[str, str]] = {
    "en": {
        # conferences
        "enter_pin": "Please enter the conference PIN, then press the hash key.",
        "wrong_pin": "That PIN is not correct.",
        "joined": "You are now in the conference.",
        "recorded": "This call is recorded.",
        # switchboard and IVR
        "closed": "We are closed right now. Please call again during our opening hours.",
        "unavailable": "The person you are calling is not available.",
        "invalid_option": "That option is not valid.",
        "no_input": "We did not receive your choice.",
        "transferring": "Please hold while we connect you.",
        "busy_wait": "The person you are calling is busy. Press 1 to wait until they are free, "
                     "or stay on the line to leave a message.",
        "enter_callback_number": "Enter the number we should call you back on, then press "
                                 "the hash key.",
        "callback_number_saved": "Thank you. We will call you back as soon as we can.",
        "callback_option": "Press 2 to leave a number we can call you back on.",
        "call_back_on": "Please call back on",
        # voicemail: leaving a message
        "leave_message": "Please leave a message after the tone.",
        "the_person_at": "The person at extension",
        "is_not_available": "is not available.",
        "is_busy": "is on the phone.",
        "leave_message_options": "Leave a message after the tone, or press 0 for the "
                                 "operator, or the hash key to skip the greeting.",
        # voicemail: the mailbox menu
        "enter_mailbox": "Please enter your mailbox number, then press the hash key.",
        "enter_your_pin": "Please enter your PIN, then press the hash key.",
        "enter_new_pin": "Please enter your new PIN, then press the hash key.",
        "pin_changed": "Your PIN has been changed.",
        "you_have": "You have",
        "and": "and",
        "new_message": "new message",
        "new_messages": "new messages",
        "saved_message": "saved message",
        "saved_messages": "saved messages",
        "more_than_twenty": "more than twenty",
        "no_messages": "You have no messages.",
        "message_options": "Press 7 to delete, 9 to save, 5 to repeat, or the hash key for the "
                           "next message.",
        "mailbox_options_key": "Press 0 for your mailbox options.",
        "shared_mailbox_key": "Press 2 for the shared mailbox",
        "message_deleted": "Message deleted.",
        "message_saved": "Message saved.",
        "no_more_messages": "No more messages.",
        "greeting_menu": "Press 1 to record your unavailable greeting, 2 for your busy "
                         "greeting, 3 for your name, 4 for a temporary greeting, or 5 to "
                         "change your PIN.",
        "record_after_tone": "Please speak after the tone, then press the hash key.",
        "greeting_saved": "Your greeting has been saved.",
        "temporary_greeting_days": "Enter for how many days the temporary greeting should play, "
                                   "then press the hash key.",
        "confirm_new_pin": "Please enter your new PIN again, then press the hash key.",
        "pin_rules": "A PIN has four to twelve digits.",
        "goodbye": "Goodbye.",
        # ACD queues: position, wait, callback, survey; agents' feature codes
        "queue_you_are": "You are number",
        "queue_in_line": "in the queue.",
        "queue_wait_about": "Your estimated waiting time is about",
        "minute": "minute.",
        "minutes": "minutes.",
        "queue_periodic": ("All our agents are busy. Please hold, you will be answered as soon as "
                           "possible."),
        "queue_callback_offer": ("To be called back when it is your turn, without losing your "
                                 "place, press 1."),
        "queue_callback_saved": "Thank you. We will call you back when it is your turn. Goodbye.",
        "queue_callback_hello": ("This is the call back you asked for. Please hold, an agent will "
                                 "answer."),
        "survey_rate": "Please rate this call from 1 to 5, where 5 is best.",
        "survey_thanks": "Thank you for your rating.",
        "agent_logged_in": "You are logged in to your queues.",
        "agent_logged_out": "You are logged out of your queues.",
        "agent_paused": "You are paused.",
        "agent_unpaused": "You are available again.",
        "not_an_agent": "You are not an agent of any queue.",
        # spoken diversion: "<name> is in a meeting until eleven o'clock on Monday"
        "has_status": "has the status",
        "in_a_meeting": "is in a meeting",
        "at_lunch": "is at lunch",
        "out_of_office": "is out of the office",
        "until": "until",
        "oclock": "o'clock",
        "hour_1": "one",
        **_weekdays("on Monday | on Tuesday | on Wednesday | on Thursday | on Friday | "
                    "on Saturday | on Sunday"),
        **_named("digit_", "oh|one|two|three|four|five|six|seven|eight|nine"),
        **_numbers("one two three four five six seven eight nine ten eleven twelve thirteen "
                   "fourteen fifteen sixteen seventeen eighteen nineteen twenty",
                   "twenty thirty forty fifty", "{ten}-{one}"),
    },
    "sv": {
        "enter_pin": "Ange konferensens kod och avsluta med fyrkant.",
        "wrong_pin": "Koden är inte rätt.",
        "joined": "Du är nu med i konferensen.",
        "recorded": "Samtalet spelas in.",
        "closed": "Vi har stängt just nu. Välkommen att ringa under våra öppettider.",
        "unavailable": "Den du söker är inte tillgänglig.",
        "invalid_option": "Det valet finns inte.",
        "no_input": "Vi uppfattade inget val.",
        "transferring": "Var god dröj, vi kopplar ditt samtal.",
        "busy_wait": "Den du söker pratar i telefon. Tryck 1 för att vänta tills linjen blir "
                     "ledig, eller stanna kvar i luren för att lämna ett meddelande.",
        "enter_callback_number": "Ange numret vi ska ringa upp dig på och avsluta med fyrkant.",
        "callback_number_saved": "Tack. Vi ringer upp dig så snart vi kan.",
        "callback_option": "Tryck 2 för att lämna ett nummer vi kan ringa upp dig på.",
        "call_back_on": "Ring tillbaka på nummer",
        "leave_message": "Lämna ett meddelande efter tonen.",
        "the_person_at": "Personen på anknytning",
        "is_not_available": "är inte tillgänglig just nu.",
        "is_busy": "pratar i telefon just nu.",
        "leave_message_options": "Lämna ett meddelande efter tonen, tryck 0 för växeln, "
                                 "eller fyrkant för att hoppa över hälsningen.",
        "enter_mailbox": "Ange numret till din röstbrevlåda och avsluta med fyrkant.",
        "enter_your_pin": "Ange din pinkod och avsluta med fyrkant.",
        "enter_new_pin": "Ange din nya pinkod och avsluta med fyrkant.",
        "pin_changed": "Din pinkod är ändrad.",
        "you_have": "Du har",
        "and": "och",
        "new_message": "nytt meddelande",
        "new_messages": "nya meddelanden",
        "saved_message": "sparat meddelande",
        "saved_messages": "sparade meddelanden",
        "more_than_twenty": "fler än tjugo",
        "no_messages": "Du har inga meddelanden.",
        "message_options": "Tryck 7 för att radera, 9 för att spara, 5 för att lyssna igen, eller "
                           "fyrkant för nästa meddelande.",
        "mailbox_options_key": "Tryck 0 för inställningar för din röstbrevlåda.",
        "shared_mailbox_key": "Tryck 2 för den gemensamma röstbrevlådan",
        "message_deleted": "Meddelandet är raderat.",
        "message_saved": "Meddelandet är sparat.",
        "no_more_messages": "Inga fler meddelanden.",
        "greeting_menu": "Tryck 1 för att spela in din frånvarohälsning, 2 för din "
                         "upptagethälsning, 3 för ditt namn, 4 för en tillfällig hälsning, "
                         "eller 5 för att byta pinkod.",
        "record_after_tone": "Tala in efter tonen och tryck fyrkant när du är klar.",
        "greeting_saved": "Din hälsning är sparad.",
        "temporary_greeting_days": "Ange hur många dagar den tillfälliga hälsningen ska spelas "
                                   "och avsluta med fyrkant.",
        "confirm_new_pin": "Ange din nya pinkod en gång till och avsluta med fyrkant.",
        "pin_rules": "En pinkod har fyra till tolv siffror.",
        "goodbye": "Hej då.",
        # ACD queues: position, wait, callback, survey; agents' feature codes
        "queue_you_are": "Du är nummer",
        "queue_in_line": "i kön.",
        "queue_wait_about": "Din beräknade väntetid är ungefär",
        "minute": "minut.",
        "minutes": "minuter.",
        "queue_periodic": ("Alla våra handläggare är upptagna. Var vänlig vänta, du besvaras så "
                           "snart som möjligt."),
        "queue_callback_offer": ("Tryck 1 för att bli uppringd när det är din tur, utan att "
                                 "förlora din plats."),
        "queue_callback_saved": "Tack. Vi ringer upp dig när det är din tur. Hej då.",
        "queue_callback_hello": ("Det här är återuppringningen du bad om. Var vänlig vänta, en "
                                 "handläggare svarar."),
        "survey_rate": "Betygsätt samtalet från 1 till 5, där 5 är bäst.",
        "survey_thanks": "Tack för ditt betyg.",
        "agent_logged_in": "Du är inloggad i dina köer.",
        "agent_logged_out": "Du är utloggad ur dina köer.",
        "agent_paused": "Du har paus.",
        "agent_unpaused": "Du är tillgänglig igen.",
        "not_an_agent": "Du är inte agent i någon kö.",
        "has_status": "har status",
        "in_a_meeting": "sitter i möte",
        "at_lunch": "är på lunch",
        "out_of_office": "är inte på kontoret",
        "until": "till",
        "oclock": "klockan",
        "hour_1": "ett",
        **_weekdays("på måndag | på tisdag | på onsdag | på torsdag | på fredag | på lördag | "
                    "på söndag"),
        **_named("digit_", "noll|ett|två|tre|fyra|fem|sex|sju|åtta|nio"),
        **_numbers("ett två tre fyra fem sex sju åtta nio tio elva tolv tretton fjorton femton "
                   "sexton sjutton arton nitton tjugo",
                   "tjugo trettio fyrtio femtio", "{ten}{one}"),
    },
    "da": {
        "enter_pin": "Indtast konferencens pinkode, og afslut med firkant.",
        "wrong_pin": "Pinkoden er forkert.",
        "joined": "Du deltager nu i konferencen.",
        "recorded": "Samtalen bliver optaget.",
        "closed": "Vi har lukket lige nu. Ring venligst igen inden for vores åbningstid.",
        "unavailable": "Den, du ringer til, er ikke tilgængelig.",
        "invalid_option": "Det valg er ikke gyldigt.",
        "no_input": "Vi modtog ikke dit valg.",
        "transferring": "Vent venligst, mens vi stiller dig om.",
        "busy_wait": "Den, du ringer til, taler i telefon. Tryk 1 for at vente, til linjen er "
                     "ledig, eller bliv på linjen for at indtale en besked.",
        "enter_callback_number": "Indtast det nummer, vi skal ringe dig op på, og afslut med "
                                 "firkant.",
        "callback_number_saved": "Tak. Vi ringer dig op hurtigst muligt.",
        "callback_option": "Tryk 2 for at efterlade et nummer, vi kan ringe dig op på.",
        "call_back_on": "Ring venligst tilbage på nummer",
        "leave_message": "Indtal venligst en besked efter tonen.",
        "the_person_at": "Personen på lokalnummer",
        "is_not_available": "er ikke tilgængelig lige nu.",
        "is_busy": "taler i telefon lige nu.",
        "leave_message_options": "Indtal en besked efter tonen, tryk 0 for omstillingen, "
                                 "eller tryk firkant for at springe hilsenen over.",
        "enter_mailbox": "Indtast dit postkassenummer, og afslut med firkant.",
        "enter_your_pin": "Indtast din pinkode, og afslut med firkant.",
        "enter_new_pin": "Indtast din nye pinkode, og afslut med firkant.",
        "pin_changed": "Din pinkode er ændret.",
        "you_have": "Du har",
        "and": "og",
        "new_message": "ny besked",
        "new_messages": "nye beskeder",
        "saved_message": "gemt besked",
        "saved_messages": "gemte beskeder",
        "more_than_twenty": "flere end tyve",
        "no_messages": "Du har ingen beskeder.",
        "message_options": "Tryk 7 for at slette, 9 for at gemme, 5 for at høre beskeden igen, "
                           "eller firkant for næste besked.",
        "mailbox_options_key": "Tryk 0 for indstillinger for din postkasse.",
        "shared_mailbox_key": "Tryk 2 for den fælles postkasse",
        "message_deleted": "Beskeden er slettet.",
        "message_saved": "Beskeden er gemt.",
        "no_more_messages": "Ikke flere beskeder.",
        "greeting_menu": "Tryk 1 for at indtale din fraværshilsen, 2 for din optagethilsen, "
                         "3 for dit navn, 4 for en midlertidig hilsen, eller 5 for at ændre "
                         "din pinkode.",
        "record_after_tone": "Indtal efter tonen, og tryk firkant, når du er færdig.",
        "greeting_saved": "Din hilsen er gemt.",
        "temporary_greeting_days": "Indtast hvor mange dage den midlertidige hilsen skal "
                                   "afspilles, og afslut med firkant.",
        "confirm_new_pin": "Indtast din nye pinkode igen, og afslut med firkant.",
        "pin_rules": "En pinkode har fire til tolv cifre.",
        "goodbye": "Farvel.",
        # ACD queues: position, wait, callback, survey; agents' feature codes
        "queue_you_are": "Du er nummer",
        "queue_in_line": "i køen.",
        "queue_wait_about": "Din forventede ventetid er cirka",
        "minute": "minut.",
        "minutes": "minutter.",
        "queue_periodic": ("Alle vores medarbejdere er optaget. Vent venligst, du bliver besvaret "
                           "hurtigst muligt."),
        "queue_callback_offer": ("Tryk 1 for at blive ringet op, når det er din tur, uden at "
                                 "miste din plads."),
        "queue_callback_saved": "Tak. Vi ringer dig op, når det er din tur. Farvel.",
        "queue_callback_hello": ("Dette er det opkald, du bad om. Vent venligst, en medarbejder "
                                 "svarer."),
        "survey_rate": "Bedøm venligst samtalen fra 1 til 5, hvor 5 er bedst.",
        "survey_thanks": "Tak for din bedømmelse.",
        "agent_logged_in": "Du er logget ind i dine køer.",
        "agent_logged_out": "Du er logget ud af dine køer.",
        "agent_paused": "Du har pause.",
        "agent_unpaused": "Du er ledig igen.",
        "not_an_agent": "Du er ikke agent i nogen kø.",
        "has_status": "har status",
        "in_a_meeting": "er til møde",
        "at_lunch": "er til frokost",
        "out_of_office": "er ikke på kontoret",
        "until": "til",
        "oclock": "klokken",
        "hour_1": "et",
        **_weekdays("på mandag | på tirsdag | på onsdag | på torsdag | på fredag | på lørdag | "
                    "på søndag"),
        **_named("digit_", "nul|en|to|tre|fire|fem|seks|syv|otte|ni"),
        **_numbers("en to tre fire fem seks syv otte ni ti elleve tolv tretten fjorten femten "
                   "seksten sytten atten nitten tyve",
                   "tyve tredive fyrre halvtreds", "{one}og{ten}"),
    },
    "nb": {
        "enter_pin": "Tast inn PIN-koden til konferansen, og avslutt med firkant.",
        "wrong_pin": "PIN-koden er feil.",
        "joined": "Du er nå med i konferansen.",
        "recorded": "Samtalen blir tatt opp.",
        "closed": "Vi har stengt nå. Ring gjerne igjen i åpningstiden vår.",
        "unavailable": "Den du ringer til, er ikke tilgjengelig.",
        "invalid_option": "Det valget er ikke gyldig.",
        "no_input": "Vi mottok ikke valget ditt.",
        "transferring": "Vent litt, så setter vi deg over.",
        "busy_wait": "Den du ringer til, er opptatt. Trykk 1 for å vente til linjen er ledig, "
                     "eller bli på linjen for å legge igjen en beskjed.",
        "enter_callback_number": "Tast inn nummeret vi skal ringe deg tilbake på, og avslutt "
                                 "med firkant.",
        "callback_number_saved": "Takk. Vi ringer deg tilbake så snart vi kan.",
        "callback_option": "Trykk 2 for å legge igjen et nummer vi kan ringe deg tilbake på.",
        "call_back_on": "Vennligst ring tilbake på nummer",
        "leave_message": "Legg igjen en beskjed etter tonen.",
        "the_person_at": "Personen på internnummer",
        "is_not_available": "er ikke tilgjengelig akkurat nå.",
        "is_busy": "snakker i telefonen akkurat nå.",
        "leave_message_options": "Legg igjen en beskjed etter tonen, trykk 0 for "
                                 "sentralbordet, eller trykk firkant for å hoppe over hilsenen.",
        "enter_mailbox": "Tast inn nummeret til postkassen din, og avslutt med firkant.",
        "enter_your_pin": "Tast inn PIN-koden din, og avslutt med firkant.",
        "enter_new_pin": "Tast inn den nye PIN-koden din, og avslutt med firkant.",
        "pin_changed": "PIN-koden din er endret.",
        "you_have": "Du har",
        "and": "og",
        "new_message": "ny beskjed",
        "new_messages": "nye beskjeder",
        "saved_message": "lagret beskjed",
        "saved_messages": "lagrede beskjeder",
        "more_than_twenty": "flere enn tjue",
        "no_messages": "Du har ingen beskjeder.",
        "message_options": "Trykk 7 for å slette, 9 for å lagre, 5 for å høre beskjeden igjen, "
                           "eller firkant for neste beskjed.",
        "mailbox_options_key": "Trykk 0 for innstillingene til postkassen din.",
        "shared_mailbox_key": "Trykk 2 for den felles postkassen",
        "message_deleted": "Beskjeden er slettet.",
        "message_saved": "Beskjeden er lagret.",
        "no_more_messages": "Ingen flere beskjeder.",
        "greeting_menu": "Trykk 1 for å spille inn fraværshilsenen din, 2 for "
                         "opptatthilsenen, 3 for navnet ditt, 4 for en midlertidig hilsen, "
                         "eller 5 for å endre PIN-koden.",
        "record_after_tone": "Snakk etter tonen, og trykk firkant når du er ferdig.",
        "greeting_saved": "Hilsenen din er lagret.",
        "temporary_greeting_days": "Tast inn hvor mange dager den midlertidige hilsenen skal "
                                   "spilles, og avslutt med firkant.",
        "confirm_new_pin": "Tast inn den nye PIN-koden din én gang til, og avslutt med firkant.",
        "pin_rules": "En PIN-kode har fire til tolv sifre.",
        "goodbye": "Ha det bra.",
        # ACD queues: position, wait, callback, survey; agents' feature codes
        "queue_you_are": "Du er nummer",
        "queue_in_line": "i køen.",
        "queue_wait_about": "Din forventede ventetid er omtrent",
        "minute": "minutt.",
        "minutes": "minutter.",
        "queue_periodic": ("Alle våre medarbeidere er opptatt. Vennligst vent, du blir besvart så "
                           "snart som mulig."),
        "queue_callback_offer": ("Trykk 1 for å bli ringt opp når det er din tur, uten å miste "
                                 "plassen din."),
        "queue_callback_saved": "Takk. Vi ringer deg opp når det er din tur. Ha det bra.",
        "queue_callback_hello": ("Dette er oppringningen du ba om. Vennligst vent, en medarbeider "
                                 "svarer."),
        "survey_rate": "Vennligst gi samtalen en karakter fra 1 til 5, der 5 er best.",
        "survey_thanks": "Takk for vurderingen.",
        "agent_logged_in": "Du er logget inn i køene dine.",
        "agent_logged_out": "Du er logget ut av køene dine.",
        "agent_paused": "Du har pause.",
        "agent_unpaused": "Du er ledig igjen.",
        "not_an_agent": "Du er ikke agent i noen kø.",
        "has_status": "har status",
        "in_a_meeting": "er i møte",
        "at_lunch": "er på lunsj",
        "out_of_office": "er ikke på kontoret",
        "until": "til",
        "oclock": "klokken",
        "hour_1": "ett",
        **_weekdays("på mandag | på tirsdag | på onsdag | på torsdag | på fredag | på lørdag | "
                    "på søndag"),
        **_named("digit_", "null|en|to|tre|fire|fem|seks|sju|åtte|ni"),
        **_numbers("en to tre fire fem seks sju åtte ni ti elleve tolv tretten fjorten femten "
                   "seksten sytten atten nitten tjue",
                   "tjue tretti førti femti", "{ten}{one}"),
    },
    "fi": {
        "enter_pin": "Näppäile neuvottelun PIN-koodi ja paina lopuksi risuaitaa.",
        "wrong_pin": "PIN-koodi on väärä.",
        "joined": "Olet nyt mukana neuvottelussa.",
        "recorded": "Tämä puhelu tallennetaan.",
        "closed": "Olemme nyt suljettuna. Soita uudelleen aukioloaikanamme.",
        "unavailable": "Tavoittelemasi henkilö ei ole tavoitettavissa.",
        "invalid_option": "Valinta ei ole kelvollinen.",
        "no_input": "Emme saaneet valintaasi.",
        "transferring": "Odota hetki, yhdistämme puhelusi.",
        "busy_wait": "Tavoittelemasi henkilö puhuu toista puhelua. Paina 1 odottaaksesi, "
                     "kunnes linja vapautuu, tai pysy linjalla jättääksesi viestin.",
        "enter_callback_number": "Näppäile numero, johon soitamme sinulle takaisin, ja paina "
                                 "lopuksi risuaitaa.",
        "callback_number_saved": "Kiitos. Soitamme sinulle takaisin mahdollisimman pian.",
        "callback_option": "Paina 2 jättääksesi numeron, johon voimme soittaa sinulle takaisin.",
        "call_back_on": "Soita takaisin numeroon",
        "leave_message": "Jätä viesti äänimerkin jälkeen.",
        "the_person_at": "Alanumero",
        "is_not_available": "ei ole juuri nyt tavoitettavissa.",
        "is_busy": "puhuu parhaillaan puhelua.",
        "leave_message_options": "Jätä viesti äänimerkin jälkeen, paina 0 päästäksesi "
                                 "vaihteeseen, tai risuaitaa ohittaaksesi tervehdyksen.",
        "enter_mailbox": "Näppäile vastaajasi numero ja paina lopuksi risuaitaa.",
        "enter_your_pin": "Näppäile PIN-koodisi ja paina lopuksi risuaitaa.",
        "enter_new_pin": "Näppäile uusi PIN-koodisi ja paina lopuksi risuaitaa.",
        "pin_changed": "PIN-koodisi on vaihdettu.",
        "you_have": "Sinulla on",
        "and": "ja",
        "new_message": "uusi viesti",
        "new_messages": "uutta viestiä",
        "saved_message": "tallennettu viesti",
        "saved_messages": "tallennettua viestiä",
        "more_than_twenty": "yli kaksikymmentä",
        "no_messages": "Sinulla ei ole viestejä.",
        "message_options": "Paina 7 poistaaksesi, 9 tallentaaksesi, 5 kuunnellaksesi uudelleen, "
                           "tai risuaitaa seuraavaan viestiin.",
        "mailbox_options_key": "Paina 0 siirtyäksesi vastaajasi asetuksiin.",
        "shared_mailbox_key": "Paina 2 siirtyäksesi yhteiseen vastaajaan",
        "message_deleted": "Viesti poistettu.",
        "message_saved": "Viesti tallennettu.",
        "no_more_messages": "Ei enempää viestejä.",
        "greeting_menu": "Paina 1 nauhoittaaksesi poissaolotervehdyksen, 2 "
                         "varattu-tervehdyksen, 3 nimesi, 4 tilapäisen tervehdyksen, tai 5 "
                         "vaihtaaksesi PIN-koodisi.",
        "record_after_tone": "Puhu äänimerkin jälkeen ja paina lopuksi risuaitaa.",
        "greeting_saved": "Tervehdyksesi on tallennettu.",
        "temporary_greeting_days": "Näppäile, kuinka monta päivää tilapäinen tervehdys on "
                                   "käytössä, ja paina lopuksi risuaitaa.",
        "confirm_new_pin": "Näppäile uusi PIN-koodisi uudelleen ja paina lopuksi risuaitaa.",
        "pin_rules": "PIN-koodissa on neljästä kahteentoista numeroa.",
        "goodbye": "Näkemiin.",
        # ACD queues: position, wait, callback, survey; agents' feature codes
        "queue_you_are": "Sijaintisi jonossa on",
        "queue_in_line": "Odota, ole hyvä.",
        "queue_wait_about": "Arvioitu odotusaikasi on noin",
        "minute": "minuutti.",
        "minutes": "minuuttia.",
        "queue_periodic": ("Kaikki asiakaspalvelijamme ovat varattuja. Olkaa hyvä ja odottakaa, "
                           "vastaamme mahdollisimman pian."),
        "queue_callback_offer": ("Paina 1, niin soitamme sinulle takaisin vuorosi tullessa, ja "
                                 "paikkasi säilyy."),
        "queue_callback_saved": "Kiitos. Soitamme sinulle, kun on vuorosi. Näkemiin.",
        "queue_callback_hello": ("Tämä on pyytämäsi takaisinsoitto. Odota hetki, asiakaspalvelija "
                                 "vastaa."),
        "survey_rate": "Arvioi puhelu asteikolla 1–5, jossa 5 on paras.",
        "survey_thanks": "Kiitos arviostasi.",
        "agent_logged_in": "Olet kirjautunut jonoihisi.",
        "agent_logged_out": "Olet kirjautunut ulos jonoistasi.",
        "agent_paused": "Olet tauolla.",
        "agent_unpaused": "Olet taas vapaana.",
        "not_an_agent": "Et ole minkään jonon agentti.",
        "has_status": "on tilassa",
        "in_a_meeting": "on kokouksessa",
        "at_lunch": "on lounaalla",
        "out_of_office": "ei ole toimistolla",
        "until": "ja on tavoitettavissa taas",  # "… kello yksitoista": no case to inflect
        "oclock": "kello",
        "hour_1": "yksi",
        **_weekdays("maanantaina | tiistaina | keskiviikkona | torstaina | perjantaina | "
                    "lauantaina | sunnuntaina"),
        **_named("digit_", "nolla|yksi|kaksi|kolme|neljä|viisi|kuusi|seitsemän|kahdeksan|"
                           "yhdeksän"),
        **_numbers("yksi kaksi kolme neljä viisi kuusi seitsemän kahdeksan yhdeksän kymmenen "
                   "yksitoista kaksitoista kolmetoista neljätoista viisitoista kuusitoista "
                   "seitsemäntoista kahdeksantoista yhdeksäntoista kaksikymmentä",
                   "kaksikymmentä kolmekymmentä neljäkymmentä viisikymmentä", "{ten}{one}"),
    },
    "de": {
        "enter_pin": "Bitte geben Sie die PIN der Konferenz ein und drücken Sie anschließend "
                     "die Rautetaste.",
        "wrong_pin": "Die PIN ist nicht korrekt.",
        "joined": "Sie sind jetzt in der Konferenz.",
        "recorded": "Dieses Gespräch wird aufgezeichnet.",
        "closed": "Wir haben zurzeit geschlossen. Bitte rufen Sie während unserer "
                  "Geschäftszeiten wieder an.",
        "unavailable": "Der gewünschte Gesprächspartner ist nicht erreichbar.",
        "invalid_option": "Diese Auswahl ist nicht gültig.",
        "no_input": "Wir haben keine Auswahl erhalten.",
        "transferring": "Bitte warten Sie, Sie werden verbunden.",
        "busy_wait": "Der gewünschte Gesprächspartner telefoniert gerade. Drücken Sie die 1, "
                     "um zu warten, bis die Leitung frei ist, oder bleiben Sie in der Leitung, "
                     "um eine Nachricht zu hinterlassen.",
        "enter_callback_number": "Bitte geben Sie die Nummer ein, unter der wir Sie "
                                 "zurückrufen sollen, und drücken Sie anschließend die "
                                 "Rautetaste.",
        "callback_number_saved": "Vielen Dank. Wir rufen Sie so bald wie möglich zurück.",
        "callback_option": "Drücken Sie die 2, um eine Rückrufnummer zu hinterlassen.",
        "call_back_on": "Bitte rufen Sie zurück unter der Nummer",
        "leave_message": "Bitte hinterlassen Sie eine Nachricht nach dem Signalton.",
        "the_person_at": "Der Teilnehmer mit der Durchwahl",
        "is_not_available": "ist zurzeit nicht erreichbar.",
        "is_busy": "telefoniert gerade.",
        "leave_message_options": "Hinterlassen Sie eine Nachricht nach dem Signalton, drücken "
                                 "Sie die 0 für die Zentrale, oder die Rautetaste, um die "
                                 "Ansage zu überspringen.",
        "enter_mailbox": "Bitte geben Sie Ihre Mailboxnummer ein und drücken Sie anschließend "
                         "die Rautetaste.",
        "enter_your_pin": "Bitte geben Sie Ihre PIN ein und drücken Sie anschließend die "
                          "Rautetaste.",
        "enter_new_pin": "Bitte geben Sie Ihre neue PIN ein und drücken Sie anschließend die "
                         "Rautetaste.",
        "pin_changed": "Ihre PIN wurde geändert.",
        "you_have": "Sie haben",
        "and": "und",
        "new_message": "neue Nachricht",
        "new_messages": "neue Nachrichten",
        "saved_message": "gespeicherte Nachricht",
        "saved_messages": "gespeicherte Nachrichten",
        "more_than_twenty": "mehr als zwanzig",
        "no_messages": "Sie haben keine Nachrichten.",
        "message_options": "Drücken Sie die 7 zum Löschen, die 9 zum Speichern, die 5 zum "
                           "Wiederholen, oder die Rautetaste für die nächste Nachricht.",
        "mailbox_options_key": "Drücken Sie die 0 für die Einstellungen Ihrer Mailbox.",
        "shared_mailbox_key": "Drücken Sie die 2 für die gemeinsame Mailbox",
        "message_deleted": "Nachricht gelöscht.",
        "message_saved": "Nachricht gespeichert.",
        "no_more_messages": "Keine weiteren Nachrichten.",
        "greeting_menu": "Drücken Sie die 1, um Ihre Abwesenheitsansage aufzunehmen, die 2 "
                         "für Ihre Besetztansage, die 3 für Ihren Namen, die 4 für eine "
                         "vorübergehende Ansage, oder die 5, um Ihre PIN zu ändern.",
        "record_after_tone": "Bitte sprechen Sie nach dem Signalton und drücken Sie danach "
                             "die Rautetaste.",
        "greeting_saved": "Ihre Ansage wurde gespeichert.",
        "temporary_greeting_days": "Bitte geben Sie ein, wie viele Tage die vorübergehende Ansage "
                                   "gelten soll, und drücken Sie anschließend die Rautetaste.",
        "confirm_new_pin": "Bitte geben Sie Ihre neue PIN noch einmal ein und drücken Sie "
                           "anschließend die Rautetaste.",
        "pin_rules": "Eine PIN hat vier bis zwölf Ziffern.",
        "goodbye": "Auf Wiederhören.",
        # ACD queues: position, wait, callback, survey; agents' feature codes
        "queue_you_are": "Sie sind an Position",
        "queue_in_line": "in der Warteschlange.",
        "queue_wait_about": "Ihre voraussichtliche Wartezeit beträgt etwa",
        "minute": "Minute.",
        "minutes": "Minuten.",
        "queue_periodic": ("Alle unsere Mitarbeiter sind im Gespräch. Bitte warten Sie, Sie "
                           "werden so bald wie möglich verbunden."),
        "queue_callback_offer": ("Um zurückgerufen zu werden, wenn Sie an der Reihe sind, ohne "
                                 "Ihren Platz zu verlieren, drücken Sie die 1."),
        "queue_callback_saved": ("Danke. Wir rufen Sie zurück, wenn Sie an der Reihe sind. Auf "
                                 "Wiederhören."),
        "queue_callback_hello": ("Dies ist der gewünschte Rückruf. Bitte warten Sie, ein "
                                 "Mitarbeiter meldet sich."),
        "survey_rate": "Bitte bewerten Sie das Gespräch von 1 bis 5, wobei 5 am besten ist.",
        "survey_thanks": "Danke für Ihre Bewertung.",
        "agent_logged_in": "Sie sind in Ihren Warteschlangen angemeldet.",
        "agent_logged_out": "Sie sind von Ihren Warteschlangen abgemeldet.",
        "agent_paused": "Sie haben Pause.",
        "agent_unpaused": "Sie sind wieder verfügbar.",
        "not_an_agent": "Sie sind in keiner Warteschlange Agent.",
        "has_status": "hat den Status",
        "in_a_meeting": "ist in einer Besprechung",
        "at_lunch": "ist in der Mittagspause",
        "out_of_office": "ist nicht im Büro",
        "until": "bis",
        "oclock": "Uhr",
        "hour_1": "ein",
        **_weekdays("am Montag | am Dienstag | am Mittwoch | am Donnerstag | am Freitag | "
                    "am Samstag | am Sonntag"),
        **_named("digit_", "null|eins|zwei|drei|vier|fünf|sechs|sieben|acht|neun"),
        # number_1 is the count: "Sie haben eine neue Nachricht"
        **_numbers("eine zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn "
                   "vierzehn fünfzehn sechzehn siebzehn achtzehn neunzehn zwanzig",
                   "zwanzig dreißig vierzig fünfzig", "{one}und{ten}",
                   "ein zwei drei vier fünf sechs sieben acht neun"),
    },
}
