"""The apps' words in English and Russian, and money as each language writes it.

The language is the `lang` cookie (the switch on every page) or else the browser's Accept-Language;
English when neither names Russian. The English words of controls are the contract's accessible
names (UI.md); the Russian interface uses its own words for the same roles.
"""

from __future__ import annotations

from collections.abc import Mapping

LANGUAGES = ("en", "ru")
DEFAULT = "en"

WORDS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "app": "Sandwich",
        "username": "Username",
        "password": "Password",
        "email": "Email",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "create_account": "Create account",
        "no_account": "New here?",
        "have_account": "Already have an account?",
        "menu": "Menu",
        "basket": "Basket",
        "wallet": "Wallet",
        "orders": "Orders",
        "letters": "Letters",
        "add_to_basket": "Add to basket",
        "ingredients": "Ingredients",
        "quantity": "Quantity",
        "remove": "Remove",
        "update": "Update",
        "total": "Total",
        "address": "Address",
        "latitude": "Latitude",
        "longitude": "Longitude",
        "delivery_point": "Delivery point",
        "place_order": "Place order",
        "basket_empty": "Your basket is empty.",
        "balance": "Balance",
        "amount": "Amount",
        "top_up": "Top up",
        "operations": "Operations",
        "kind": "Kind",
        "when": "When",
        "balance_after": "Balance after",
        "order": "Order",
        "status": "Status",
        "history": "History",
        "cancel_order": "Cancel order",
        "no_orders": "No orders yet.",
        "no_letters": "No letters yet.",
        "subject": "Subject",
        "not_found": "Not found",
        "not_found_text": "There is nothing here, or it is not yours.",
        "back_to_menu": "Back to the menu",
        "kitchen": "Kitchen",
        "mark_ready": "Mark ready",
        "queue_empty": "No orders to cook.",
        "courier": "Deliveries",
        "take": "Take",
        "delivered": "Delivered",
        "my_deliveries": "My deliveries",
        "ready_orders": "Ready to take",
        "nothing_ready": "Nothing to take right now.",
        "refresh": "Refresh",
        "language": "Language",
        "sign_in_first": "Please sign in.",
        "something_wrong": "Something went wrong. Please try again.",
        "unavailable": "The service is not available right now. Please try again in a moment.",
        "live": "Updates live",
        "operations_console": "Operations",
        "food_points": "Food points",
        "name": "Name",
        "capacity": "Capacity",
        "accepts_delivery": "Accepts delivery",
        "save": "Save",
        "stock": "Stock",
        "ingredient": "Ingredient",
        "ingredient_needed": "Name the ingredient.",
        "add_stock": "Add stock",
        "system": "System",
        "service": "Service",
        "live_word": "Live",
        "ready_word": "Ready",
        "requests": "Requests",
        "error_rate": "5xx share",
        "event_lag": "Event lag p99",
        "outbox_backlog": "Outbox backlog",
        "flow": "Flow",
        "broker": "Broker",
        "orders_by_status": "Orders by status",
        "yes": "yes",
        "no": "no",
        "new_food_point": "New food point",
        "active_orders": "Active orders",
        "price": "Price",
        "new_menu_item": "New menu item",
        "ingredients_hint": "One a line: name x quantity",
        "people": "People",
        "roles": "Roles",
        "food_point": "Food point",
        "none": "none",
        "roles_saved": "Roles saved",
        "search_people": "Search people",
        "only_role": "Only with role",
        "every_role": "every role",
        "find": "Find",
        "nobody_found": "Nobody found.",
        "next_page": "Next page",
        "set_roles": "Set roles",
        "order_lookup": "Order lookup",
        "order_id": "Order id",
        "at": "At",
        "trace": "Trace",
        "no_trace_backend": "No trace backend is configured (sandwich up --traces sets one): the trace ids are shown as they are.",
        "not_enough_money": "Not enough money in the wallet for this order: top it up and order again.",
    },
    "ru": {
        "app": "Сэндвич",
        "username": "Имя пользователя",
        "password": "Пароль",
        "email": "Эл. почта",
        "sign_in": "Войти",
        "sign_out": "Выйти",
        "create_account": "Создать аккаунт",
        "no_account": "Впервые здесь?",
        "have_account": "Уже есть аккаунт?",
        "menu": "Меню",
        "basket": "Корзина",
        "wallet": "Кошелёк",
        "orders": "Заказы",
        "letters": "Письма",
        "add_to_basket": "В корзину",
        "ingredients": "Состав",
        "quantity": "Количество",
        "remove": "Убрать",
        "update": "Обновить",
        "total": "Итого",
        "address": "Адрес",
        "latitude": "Широта",
        "longitude": "Долгота",
        "delivery_point": "Точка доставки",
        "place_order": "Оформить заказ",
        "basket_empty": "Корзина пуста.",
        "balance": "Баланс",
        "amount": "Сумма",
        "top_up": "Пополнить",
        "operations": "Операции",
        "kind": "Вид",
        "when": "Когда",
        "balance_after": "Остаток",
        "order": "Заказ",
        "status": "Статус",
        "history": "История",
        "cancel_order": "Отменить заказ",
        "no_orders": "Заказов пока нет.",
        "no_letters": "Писем пока нет.",
        "subject": "Тема",
        "not_found": "Не найдено",
        "not_found_text": "Здесь ничего нет, или это не ваше.",
        "back_to_menu": "Вернуться в меню",
        "kitchen": "Кухня",
        "mark_ready": "Готово",
        "queue_empty": "Заказов для готовки нет.",
        "courier": "Доставка",
        "take": "Взять",
        "delivered": "Доставлен",
        "my_deliveries": "Мои доставки",
        "ready_orders": "Готовы к выдаче",
        "nothing_ready": "Сейчас нечего взять.",
        "refresh": "Обновить",
        "language": "Язык",
        "sign_in_first": "Пожалуйста, войдите.",
        "something_wrong": "Что-то пошло не так. Попробуйте ещё раз.",
        "unavailable": "Сервис сейчас недоступен. Попробуйте через минуту.",
        "live": "Обновляется само",
        "operations_console": "Управление",
        "food_points": "Точки питания",
        "name": "Название",
        "capacity": "Вместимость",
        "accepts_delivery": "Принимает доставку",
        "save": "Сохранить",
        "stock": "Запасы",
        "ingredient": "Ингредиент",
        "ingredient_needed": "Укажите ингредиент.",
        "add_stock": "Добавить запас",
        "system": "Система",
        "service": "Сервис",
        "live_word": "Жив",
        "ready_word": "Готов",
        "requests": "Запросов",
        "error_rate": "Доля 5xx",
        "event_lag": "Задержка событий p99",
        "outbox_backlog": "Очередь outbox",
        "flow": "Режим",
        "broker": "Брокер",
        "orders_by_status": "Заказы по статусам",
        "yes": "да",
        "no": "нет",
        "new_food_point": "Новая точка",
        "active_orders": "Заказов в работе",
        "price": "Цена",
        "new_menu_item": "Новое блюдо",
        "ingredients_hint": "По одному в строке: название x количество",
        "people": "Люди",
        "roles": "Роли",
        "food_point": "Точка питания",
        "none": "нет",
        "roles_saved": "Роли сохранены",
        "search_people": "Поиск людей",
        "only_role": "Только с ролью",
        "every_role": "любая роль",
        "find": "Найти",
        "nobody_found": "Никого не нашлось.",
        "next_page": "Следующая страница",
        "set_roles": "Назначить роли",
        "order_lookup": "Поиск заказа",
        "order_id": "Номер заказа",
        "at": "Когда",
        "trace": "Трасса",
        "no_trace_backend": "Хранилище трасс не настроено (его задаёт sandwich up --traces): номера трасс показаны как есть.",
        "not_enough_money": "На кошельке не хватает денег на этот заказ: пополните его и закажите снова.",
    },
}

STATUS_WORDS: Mapping[str, Mapping[str, str]] = {
    "ru": {
        "created": "создан",
        "paid": "оплачен",
        "payment_failed": "не оплачен",
        "assigned": "передан на кухню",
        "ready": "готов",
        "in_delivery": "в пути",
        "completed": "доставлен",
        "cancelled": "отменён",
        "rejected": "отклонён",
    },
}


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The page's language: the switch's cookie, else the first of the browser's that we speak."""
    if cookie in LANGUAGES:
        return cookie
    ranked: list[tuple[float, str]] = []
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((quality, tag.strip().lower()[:2]))
    for _, language in sorted(ranked, key=lambda item: -item[0]):
        if language in LANGUAGES:
            return language
    return DEFAULT


def money(kopecks: int, language: str) -> str:
    """`1,500.00 RUB` in English, `1 500,00 ₽` in Russian (a no-break space between thousands)."""
    roubles, rest = divmod(abs(kopecks), 100)
    sign = "-" if kopecks < 0 else ""
    if language == "ru":
        grouped = f"{roubles:,}".replace(",", "\u00a0")
        return f"{sign}{grouped},{rest:02d}\u00a0₽"
    return f"{sign}{roubles:,}.{rest:02d} RUB"


def status_word(status: str, language: str) -> str:
    return STATUS_WORDS.get(language, {}).get(status, status)


def roubles_to_kopecks(text: str) -> int | None:
    """A typed amount in roubles (`1500`, `1 500,50`, `1,500.50`) in kopecks; None if it is no amount."""
    cleaned = text.strip().replace("\u00a0", "").replace(" ", "").replace("₽", "")
    if "," in cleaned and "." in cleaned:
        cleaned = cleaned.replace(",", "")
    cleaned = cleaned.replace(",", ".")
    whole, _, fraction = cleaned.partition(".")
    if not whole.isdigit() or (fraction and (not fraction.isdigit() or len(fraction) > 2)):
        return None
    return int(whole) * 100 + int(fraction.ljust(2, "0") or 0)
